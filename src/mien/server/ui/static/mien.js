// The dashboard's only script: follow a rollout live through server-sent events.
// The server renders every fragment (escaped); this file only puts them in place.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var section = document.getElementById("rollout");
  if (!section || !window.EventSource) { return; }
  var live = document.getElementById("rollout-live");
  var source = new EventSource(section.getAttribute("data-events"));
  function show(event) {
    var frame = JSON.parse(event.data);
    document.getElementById("rollout-line").textContent = frame.line;
    document.getElementById("rollout-chart").innerHTML = frame.chart;
    document.getElementById("rollout-rows").innerHTML = frame.rows;
    section.setAttribute("data-done", frame.done ? "true" : "false");
  }
  source.addEventListener("open", function () { live.textContent = "(live)"; });
  source.addEventListener("progress", show);
  source.addEventListener("done", function (event) {
    show(event);
    live.textContent = "";
    source.close();
  });
  source.addEventListener("error", function () { live.textContent = "(reconnecting…)"; });
});
