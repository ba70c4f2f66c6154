"""The frames of ``mien app shell`` (:mod:`mien.protocol.shell`): data frames carry their
stream in the first byte, control messages are JSON, and anything malformed is harmless."""

from __future__ import annotations

from typing import Any

import pytest

from mien.protocol import shell as wire


@pytest.mark.parametrize(
    ("stream", "payload"),
    [
        (wire.STDIN, b"ls\r"),
        (wire.STDOUT, b"\x1b[0m$ "),
        (wire.STDERR, b""),
        (wire.STDOUT, b"\x00"),
    ],
)
def test_data_frames_round_trip(stream: int, payload: bytes) -> None:
    assert wire.split(wire.data(stream, payload)) == (stream, payload)


def test_an_empty_frame_is_empty_input() -> None:
    assert wire.split(b"") == (wire.STDIN, b"")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (wire.resize(40, 120), "resize"),
        (wire.eof(), "eof"),
        (wire.exited(3), "exit"),
        (wire.error("no host"), "error"),
        ("not json", "unknown"),
        ("[1, 2]", "unknown"),
        ('{"type": 5}', "unknown"),
    ],
)
def test_control_messages(text: str, kind: str) -> None:
    assert wire.control(text)["type"] == kind


@pytest.mark.parametrize(
    ("message", "size"),
    [
        ({"type": "resize", "rows": 40, "cols": 120}, (40, 120)),
        ({"type": "resize", "rows": 0, "cols": 120}, None),
        ({"type": "resize", "rows": 40, "cols": 100000}, None),
        ({"type": "resize", "rows": "40", "cols": 120}, None),
        ({"type": "resize"}, None),
    ],
)
def test_only_sane_window_sizes_are_taken(message: dict[str, Any], size: Any) -> None:
    assert wire.window(message) == size


def test_the_exit_message_carries_the_status() -> None:
    assert wire.control(wire.exited(137)) == {"type": "exit", "status": 137}
