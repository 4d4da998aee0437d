"""One state blob for the accounting loop, and the commit order that makes it exactly-once.

The cursors (what has been counted) and the hour book (where it was counted) are saved together
in one blob, so they can never disagree. One pass of the loop commits in this order:

1. fold the current node reports: cursors and open hours move together, in memory;
2. write every closed hour: `store.write_hour(hour, rows, revision)` (deterministic bytes; a
   rewrite of the same hour and revision replaces the file, it never adds to it);
3. `store.put_state(STATE_NAME, encode(cursors, book))`.

A crash before 3 restarts from the previous blob: the same reports are folded again from the
old cursors, which yields the same usage (reports are cumulative within an agent epoch), and
step 2 rewrites the same (hour, revision) files instead of appending. A crash after 3 lost
nothing. The one window that snapshots cannot replay is an agent restart between two commits
(the old epoch's last counters are overwritten by the new epoch's report), so the loop commits
at once when `FoldResult.epoch_changed` is set, and otherwise every pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from sandboxer.api.ratecard import RateCardSpec
from sandboxer.ledger.accounting import Cursors
from sandboxer.ledger.hourly import ClosedHour, HourBook
from sandboxer.ledger.rows import UsageRow

STATE_NAME = "accounting"
# 2: open hours also keep peak GPU memory. Version 1 blobs still load (peak 0 until the next
# report); an operator that reads only version 1 refuses a version 2 blob instead of misreading it.
CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)


class LedgerWriter(Protocol):
    """The part of the ledger store the accounting loop needs (`ledger.store.LedgerStore`)."""

    def write_hour(self, hour: datetime, rows: list[UsageRow], revision: int) -> object: ...

    def get_state(self, name: str) -> bytes | None: ...

    def put_state(self, name: str, data: bytes) -> object: ...


def encode(cursors: Cursors, book: HourBook) -> bytes:
    doc = {"version": CHECKPOINT_VERSION, "cursors": cursors.to_json(), "book": book.to_json()}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode(data: bytes | None) -> tuple[Cursors, HourBook]:
    """An empty or missing blob is a fresh start."""
    if not data:
        return Cursors(), HourBook()
    doc = json.loads(data)
    if doc.get("version") not in READABLE_VERSIONS:
        raise ValueError(
            f"accounting checkpoint has version {doc.get('version')!r}, this operator reads "
            f"versions {READABLE_VERSIONS}; run the matching operator version or reset the state"
        )
    return Cursors.from_json(doc["cursors"]), HourBook.from_json(doc["book"])


def load(store: LedgerWriter) -> tuple[Cursors, HourBook]:
    return decode(store.get_state(STATE_NAME))


def commit(
    store: LedgerWriter, closed: Sequence[ClosedHour], cursors: Cursors, book: HourBook
) -> None:
    """Rows first, state second: see the module docstring for why this order is exactly-once."""
    for hour in closed:
        store.write_hour(hour.hour, hour.rows, hour.revision)
    store.put_state(STATE_NAME, encode(cursors, book))


def flush(store: LedgerWriter, card: RateCardSpec, now: datetime) -> list[ClosedHour]:
    """Close every open hour now, partial ones included, and commit.

    For a cluster that is going away (the playground at exit, a decommissioned operator): usage
    already folded is written instead of waiting for its hours to end. Usage that still arrives
    for those hours later is a new revision (a Correction), as for any late usage.
    """
    cursors, book = load(store)
    far = now + timedelta(days=1)
    closed = book.close(far, {}, card, grace=timedelta(0))
    book.closed_through = now.replace(minute=0, second=0, microsecond=0)
    commit(store, closed, cursors, book)
    return closed
