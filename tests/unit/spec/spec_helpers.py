"""Helpers for the persona-language unit tests: documents from text, problems as strings.

Nothing here touches the filesystem: documents are parsed from strings with a made-up
source name, and parents for ``extends`` come from a dict.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mien.spec.document import Document, parse_document
from mien.spec.errors import PersonaNotFound, SpecError
from mien.spec.layers import Layer


def doc(text: str, source: str = "p.yaml", *, overlay: bool = False) -> Document:
    """A valid document from text (fails the test with the problems if it is not)."""
    return parse_document(text, source, overlay=overlay)


def problems(text: str | bytes, source: str = "p.yaml", *, overlay: bool = False) -> list[str]:
    """Every problem of an invalid document, as the CLI prints them."""
    with pytest.raises(SpecError) as info:
        parse_document(text, source, overlay=overlay)
    return [str(p) for p in info.value.problems]


def problem(text: str | bytes, source: str = "p.yaml") -> str:
    """The single problem of an invalid document."""
    found = problems(text, source)
    assert len(found) == 1, found
    return found[0]


def finder(*texts: tuple[str, str]) -> Callable[[str, Layer], Layer]:
    """A ``find`` for :func:`mien.spec.compose.resolve` over ``(source, text)`` documents, by name."""
    docs = {d.name: d for d in (parse_document(text, source) for source, text in texts)}

    def find(name: str, child: Layer) -> Layer:
        if name not in docs:
            raise PersonaNotFound([child.problem(("extends",), f"persona {name!r} not found")])
        return Layer.of(docs[name])

    return find
