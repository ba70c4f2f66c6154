"""The audit hash chain: verification finds edits, gaps, insertions and reordering."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime

from mien.server.audit import GENESIS, ChainVerifier, Entry, chain, record_hash

AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def records(n: int = 5):  # type: ignore[no-untyped-def]
    return chain(
        None,
        [Entry("alice", "persona.update", persona="web", detail={"n": i}) for i in range(n)],
        AT,
    )


def verify(rows) -> ChainVerifier:  # type: ignore[no-untyped-def]
    checker = ChainVerifier()
    checker.feed(rows)
    return checker


def test_a_fresh_chain_verifies_and_continues() -> None:
    rows = records()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5] and rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    more = chain((rows[-1].seq, rows[-1].hash), [Entry("bob", "binding.create")], AT)
    result = verify([*rows, *more])
    assert result.ok and result.records == 6 and result.head == more[-1].hash
    assert verify([]).ok and verify([]).head is None


def test_an_edited_record_is_found() -> None:
    rows = records()
    rows[2] = dataclasses.replace(rows[2], actor="mallory")
    result = verify(rows)
    assert not result.ok and result.first_bad == 3 and "edited" in (result.reason or "")
    assert result.records == 2


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link() -> None:
    rows = records()
    forged = dataclasses.replace(rows[1], detail='{"n":99}')
    forged = dataclasses.replace(
        forged,
        hash=record_hash(
            **{
                k: getattr(forged, k)
                for k in (
                    "seq",
                    "at",
                    "actor",
                    "action",
                    "instance_id",
                    "persona",
                    "detail",
                    "prev_hash",
                )
            }
        ),
    )
    rows[1] = forged
    result = verify(rows)
    assert result.first_bad == 3 and "link" in (result.reason or "")


def test_deleted_and_reordered_records_are_found() -> None:
    rows = records()
    assert verify(rows[:2] + rows[3:]).first_bad == 4  # record 3 missing
    assert verify([rows[1], rows[0], *rows[2:]]).first_bad == 2
    assert verify(rows[1:]).first_bad == 2
