"""The terminal UI of ``mien switch`` (Textual): the personas you may switch to with their
descriptions (the active one marked), a preview of what a switch changes, the switch with
its progress and result, the history with rollback, and your customizations.

It speaks to the agent through :mod:`mien.cli.machine.local_backend` (the socket, or
root's in-process operations), exactly as ``mien switch NAME`` does. Names and
descriptions are shown as plain text, never read as markup.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    ListItem,
    ListView,
    Static,
    TabbedContent,
    TabPane,
)

from mien.cli.machine.local_backend import Backend, BackendError
from mien.protocol.switching import Candidate


class PersonaItem(ListItem):
    def __init__(self, candidate: Candidate, active: bool) -> None:
        self.candidate = candidate
        mark = "● " if active else "  "
        label = Text(mark + candidate.name, style="bold" if active else "")
        if active:
            label.append("  (active)", style="green")
        if candidate.description:
            label.append("\n    " + candidate.description.strip().splitlines()[0], style="dim")
        self.text = label
        super().__init__(Label(label))


class SwitchApp(App[int]):
    """Pick a persona, preview it, switch; look back and roll back; customize."""

    TITLE = "mien switch"
    CSS = """
    #personas { width: 40%; border: round $accent; }
    #right { width: 60%; }
    #status { height: 3; border: round $secondary; padding: 0 1; }
    #preview { padding: 0 1; }
    """
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("p", "preview", "Preview"),
        Binding("s", "switch", "Switch"),
        Binding("r", "rollback", "Roll back"),
        Binding("u", "unset", "Unset customization"),
        Binding("g", "refresh", "Refresh"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend
        self.active: str | None = None
        self.busy = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield ListView(id="personas")
            with Vertical(id="right"), TabbedContent(id="tabs"):
                with TabPane("Preview", id="tab-preview"):
                    yield Static(Text("select a persona and press p"), id="preview")
                with TabPane("History", id="tab-history"):
                    yield DataTable(id="history", cursor_type="row")
                with TabPane("Customizations", id="tab-custom"):
                    yield DataTable(id="custom", cursor_type="row")
                    yield Input(placeholder="KEY=VALUE (Enter sets it)", id="custom-input")
        yield Static(Text(""), id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#history", DataTable).add_columns("#", "persona", "kind", "applied", "")
        self.query_one("#custom", DataTable).add_columns("key", "value", "from")
        self.refresh_all()

    # --- helpers -----------------------------------------------------------------------

    def say(self, message: str, style: str = "") -> None:
        self.query_one("#status", Static).update(Text(message, style=style))

    def selected(self) -> Candidate | None:
        view = self.query_one("#personas", ListView)
        item = view.highlighted_child
        return item.candidate if isinstance(item, PersonaItem) else None

    @work(thread=True, exclusive=True, group="load")
    def refresh_all(self) -> None:
        try:
            me = self.backend.whoami()
            personas = self.backend.personas()
            active = self.backend.active()
            history = self.backend.history()
            custom = self.backend.customizations() if me.owns_customizations else None
        except BackendError as exc:
            self.call_from_thread(self.say, str(exc), "red")
            return
        self.call_from_thread(self._show, me.user, personas, active, history, custom)

    def _show(
        self,
        user: str,
        personas: list[Candidate],
        active: str | None,
        history: list[Any],
        custom: list[Any] | None,
    ) -> None:
        self.active = active
        self.sub_title = f"{user} · active: {active or '(none)'}"
        view = self.query_one("#personas", ListView)
        index = view.index or 0
        view.clear()
        for candidate in personas:
            view.append(PersonaItem(candidate, candidate.name == active))
        if personas:
            view.index = min(index, len(personas) - 1)
        if not personas:
            self.say("no persona you may switch to (access_controls.users lists you nowhere)")
        table = self.query_one("#history", DataTable)
        table.clear()
        for e in history:
            when = dt.datetime.fromtimestamp(e.applied_at).isoformat(timespec="seconds")
            mark = "current" if e.current else ("r: roll back" if e.may_roll_back else "")
            table.add_row(str(e.id), Text(e.persona or "-"), e.kind, when, mark, key=str(e.id))
        ctable = self.query_one("#custom", DataTable)
        ctable.clear()
        if custom is None:
            ctable.add_row("-", Text("only the machine's persona user may see these"), "", key="-")
        else:
            for c in custom:
                ctable.add_row(Text(c.key), Text(json.dumps(c.value)), c.source, key=c.key)

    # --- actions -------------------------------------------------------------------------

    def on_list_view_highlighted(self, _event: ListView.Highlighted) -> None:
        if self.selected() is not None and not self.busy:
            self.action_preview()

    def action_preview(self) -> None:
        candidate = self.selected()
        if candidate is not None:
            self.query_one("#preview", Static).update(Text(f"planning {candidate.name} …"))
            self.preview(candidate.name)

    @work(thread=True, exclusive=True, group="preview")
    def preview(self, name: str) -> None:
        try:
            plan = self.backend.preview(name)
        except BackendError as exc:
            self.call_from_thread(self.query_one("#preview", Static).update, Text(str(exc)))
            return
        text = Text(f"{plan.active or '(no persona)'} → {plan.persona}: ", style="bold")
        text.append(f"{plan.changes} change{'s' * (plan.changes != 1)}\n")
        for line in plan.lines:
            text.append(f"  {line.action:<8} {line.target}  {line.detail}\n")
        for note in plan.notes:
            text.append(f"  note: {note}\n", style="dim")
        text.append("\npress s to switch", style="italic")
        self.call_from_thread(self.query_one("#preview", Static).update, text)

    def action_switch(self) -> None:
        candidate = self.selected()
        if candidate is None or self.busy:
            return
        self.busy = True
        self.say(f"switching to {candidate.name} …", "yellow")
        self.do_switch(candidate.name)

    @work(thread=True, exclusive=True, group="change")
    def do_switch(self, name: str) -> None:
        try:
            outcome = self.backend.switch(name)
            message, style = outcome.message, "green" if outcome.ok else "yellow"
        except BackendError as exc:
            message, style = f"not switched: {exc}", "red"
        self.call_from_thread(self._done, message, style)

    def _done(self, message: str, style: str) -> None:
        self.busy = False
        self.say(message, style)
        self.refresh_all()

    def action_rollback(self) -> None:
        table = self.query_one("#history", DataTable)
        if self.busy or table.row_count == 0:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if not key or not key.isdigit():
            return
        self.busy = True
        self.say(f"rolling back to #{key} …", "yellow")
        self.do_rollback(int(key))

    @work(thread=True, exclusive=True, group="change")
    def do_rollback(self, to: int) -> None:
        try:
            outcome = self.backend.rollback(to)
            message, style = outcome.message, "green" if outcome.ok else "yellow"
        except BackendError as exc:
            message, style = f"not rolled back: {exc}", "red"
        self.call_from_thread(self._done, message, style)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        key, sep, raw = event.value.partition("=")
        if not sep or not key.strip():
            self.say("write KEY=VALUE, e.g. os_settings.theme=light", "red")
            return
        import yaml

        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        event.input.value = ""
        self.busy = True
        self.say(f"customizing {key.strip()} …", "yellow")
        self.do_customize(key.strip(), value, False)

    def action_unset(self) -> None:
        table = self.query_one("#custom", DataTable)
        if self.busy or table.row_count == 0:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if key and key != "-":
            self.busy = True
            self.do_customize(key, None, True)

    @work(thread=True, exclusive=True, group="change")
    def do_customize(self, key: str, value: Any, unset: bool) -> None:
        try:
            outcome = self.backend.customize(key, value, unset=unset)
            message, style = outcome.message, "green"
        except BackendError as exc:
            message, style = f"not changed: {exc}", "red"
        self.call_from_thread(self._done, message, style)

    def action_refresh(self) -> None:
        self.refresh_all()


def run_tui(root: Path, user: str | None) -> int:
    """Open the UI on ``root``; the exit status."""
    from mien.cli.machine.local_backend import backend

    face = backend(root, user)
    try:
        SwitchApp(face).run()
    finally:
        face.close()
    return 0
