"""The state admission shares with the pass, behind one lock.

Admission runs on kopf's event loop thread, `run_pass` in a worker thread. Both read the usage
totals and the friction counters, both change the friction counters, and the pass replaces the
figures admission reads. Every read or change of these goes through `SharedState.lock`, so
neither thread iterates a dict the other is changing. Ledger I/O never happens under the lock:
a webhook answer waits at most for the arithmetic of one pass phase.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from sandboxer.budgets.status import FrictionBook, RunningSandbox
from sandboxer.loop.figures import PassFigures
from sandboxer.loop.usage import UsageTotals


@dataclass(frozen=True, slots=True)
class Reservation:
    sandbox: RunningSandbox
    groups: frozenset[str]
    until: datetime


@dataclass
class SharedState:
    totals: UsageTotals = field(default_factory=UsageTotals)  # closed usage, summed as hours close
    friction: FrictionBook = field(default_factory=FrictionBook)  # refusals, exhaustions, waits
    last: PassFigures | None = None  # the last pass's figures (running sandboxes, open rows)
    # Admitted but not yet in a pass: (namespace, name) -> (what it will run, groups, until).
    reservations: dict[tuple[str, str], Reservation] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
