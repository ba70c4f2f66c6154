"""The client's call for persona effectiveness (``GET /personas/{name}/effectiveness``):
the :class:`~mien.client._http.Call` and the :class:`EffectivenessCalls` mixin of
:class:`mien.client.Client`. Used by ``mien persona effectiveness``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from mien.client._http import API, Call, model, segment
from mien.client.errors import BadRequest
from mien.protocol.effectiveness import Effectiveness

T = TypeVar("T")


def persona_effectiveness(
    name: str, version: int | None, compare: Sequence[int], since: float | None
) -> Call[Effectiveness]:
    if version is not None and compare:
        raise BadRequest("give a version or versions to compare, not both")
    if compare and len(compare) < 2:
        raise BadRequest("compare: give at least two versions")
    params = {
        "version": version,
        "compare": ",".join(str(v) for v in compare) if compare else None,
        "since": since,
    }
    path = f"{API}/personas/{segment(name)}/effectiveness"
    return Call("GET", path, model(Effectiveness), params=params)


class EffectivenessCalls:
    """Persona effectiveness (see :class:`mien.client.Client`)."""

    def send(self, call: Call[T]) -> T:
        raise NotImplementedError  # provided by Client

    def persona_effectiveness(
        self,
        name: str,
        *,
        version: int | None = None,
        compare: Sequence[int] = (),
        since: float | None = None,
    ) -> Effectiveness:
        """Per rule of a persona version (default: the latest; or two to four versions in
        ``compare``): fires, time firing, action outcomes and the metric it serves before
        and after its actions, over the last ``since`` seconds (default: 7 days)."""
        return self.send(persona_effectiveness(name, version, compare, since))
