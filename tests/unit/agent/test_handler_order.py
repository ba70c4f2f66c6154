"""The order handlers run in is part of their contract: by step, then by name, never by
the order entry points happen to be discovered in (mien.agent.registry.run_order)."""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import pytest

from mien.agent.handlers.base import BaseHandler, HandlerError
from mien.agent.registry import DEFAULT_ORDER, order_of, run_order


def handler(name: str, order: Any = None) -> Any:
    attrs: dict[str, Any] = {"name": name}
    if order is not None:
        attrs["order"] = order
    return type(f"H_{name}", (BaseHandler,), attrs)()


class NoOrder:
    """A plugin that implements the protocol without BaseHandler and sets no order."""

    name: ClassVar[str] = "plain"
    settings: ClassVar[tuple[str, ...]] = ()


def test_run_order_does_not_depend_on_discovery_order() -> None:
    found = [handler("zeta", 10), handler("beta", 50), handler("alpha", 50), handler("last", 90)]
    orders = {tuple(h.name for h in run_order(p)) for p in itertools.permutations(found)}
    assert orders == {("zeta", "alpha", "beta", "last")}


def test_a_handler_without_order_runs_in_the_default_step() -> None:
    plain: Any = NoOrder()
    assert order_of(plain) == DEFAULT_ORDER == 50
    ordered = run_order([handler("early", 10), plain, handler("late", 60), handler("a", 50)])
    assert [h.name for h in ordered] == ["early", "a", "plain", "late"]


@pytest.mark.parametrize("bad", ["10", 1.5, True])
def test_an_order_that_is_not_an_integer_is_refused_by_name(bad: Any) -> None:
    with pytest.raises(HandlerError, match=r"handler 'odd': order .* is not an integer"):
        run_order([handler("odd", bad), handler("fine", 10)])
