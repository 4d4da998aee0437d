"""A generated month of GPU usage, written through the ledger's own path and exported.

Simulated node agents publish cumulative counters (allocated, busy, energy, peak memory) every
15 minutes; each pass folds them (`fold_report`), closes hours (`HourBook.close`), commits rows
then state (`checkpoint.commit`) and moves the watermark, as the accounting loop does. What
makes the month worth validating:

* full GPUs (1, 2, 4 per sandbox) on H100 and A100, and MIG slices (1g.10gb priced at its
  parent's rate, 3g.40gb with a price of its own), sandboxes that come and go;
* the rate card changes currency on the 16th (USD -> EUR): rows keep the price and currency they
  were charged in, so the month holds both;
* node n3 is cut off from the API across the month boundary: October closes without its last
  hours, which arrive later as ledger revisions and become `ChargeClass=Correction` rows of
  November; a second outage mid-month gives late revisions inside the open period;
* an agent restart (new epoch) and operator restarts (state reloaded from the ledger).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sandboxer.api.nodereport import GPUNodeReportStatus, PodGPUCounters, PodReport
from sandboxer.api.ratecard import Price, RateCardSpec
from sandboxer.chargeback.export import ExportResult, export_period
from sandboxer.chargeback.settings import ExportSettings
from sandboxer.ledger import checkpoint
from sandboxer.ledger.accounting import SandboxRef, fold_report
from sandboxer.ledger.store import open_store

START = datetime(2026, 10, 31, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)
TICK = timedelta(minutes=15)
GRACE = timedelta(minutes=10)
EUR_FROM = datetime(2026, 11, 16, tzinfo=UTC)
OUTAGES = {  # node -> [start, end): its reports do not reach the API
    "n3": [(datetime(2026, 10, 31, 20, tzinfo=UTC), datetime(2026, 11, 1, 2, tzinfo=UTC)),
           (datetime(2026, 11, 12, 9, tzinfo=UTC), datetime(2026, 11, 12, 13, tzinfo=UTC))],
}  # fmt: skip
AGENT_RESTARTS = {"n2": datetime(2026, 11, 20, 6, 7, tzinfo=UTC)}
OPERATOR_RESTARTS = (datetime(2026, 11, 5, tzinfo=UTC), datetime(2026, 11, 23, 12, tzinfo=UTC))
GIB = 2**30


def _card(currency: str, scale: float) -> RateCardSpec:
    since = datetime(2026, 1, 1, tzinfo=UTC)
    return RateCardSpec(
        currency=currency,
        prices=[
            Price(model="H100", effective_from=since, list_price=4.0 * scale,
                  contracted_price=3.1 * scale, sku="GPU-H100"),
            Price(model="H100", mig_profile="3g.40gb", effective_from=since,
                  list_price=1.9 * scale, sku="GPU-H100-3G"),
            Price(model="A100", effective_from=since, list_price=2.5 * scale, sku="GPU-A100"),
        ],
    )  # fmt: skip


CARDS = (_card("USD", 1.0), _card("EUR", 0.92))


@dataclass
class Sandbox:
    ref: SandboxRef
    gpus: list[str]
    utilization: float
    memory_bytes: int
    sessions: list[tuple[datetime, datetime]]


@dataclass
class Node:
    name: str
    sandboxes: list[Sandbox]
    epoch_no: int = 0
    sequence: int = 0
    counters: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    peaks: dict[tuple[str, str], int] = field(default_factory=dict)

    def advance(self, start: datetime, end: datetime) -> None:
        for sb in self.sandboxes:
            held = sum(
                max(0.0, (min(end, b) - max(start, a)).total_seconds()) for a, b in sb.sessions
            )
            if held <= 0:
                continue
            for gpu in sb.gpus:
                key = (sb.ref.uid, gpu)
                c = self.counters.setdefault(key, [0.0, 0.0, 0.0])
                c[0] += held
                c[1] += held * sb.utilization
                c[2] += held * (90.0 + 600.0 * sb.utilization)
                # Memory grows while a notebook works, up to what the sandbox needs.
                grown = self.peaks.get(key, GIB) + int(held / 3600 * GIB)
                self.peaks[key] = min(sb.memory_bytes, grown)

    def restart(self) -> None:
        self.epoch_no += 1
        self.sequence = 0
        self.counters.clear()
        self.peaks.clear()

    def report(self, at: datetime) -> GPUNodeReportStatus:
        self.sequence += 1
        pods = []
        for sb in self.sandboxes:
            gpus = [
                PodGPUCounters.model_construct(
                    uuid=g, allocated_seconds=c[0], busy_seconds=c[1], energy_joules=c[2],
                    peak_memory_bytes=self.peaks[(sb.ref.uid, g)], utilization_percent=None,
                    last_active_at=None,
                )
                for g in sb.gpus
                if (c := self.counters.get((sb.ref.uid, g))) is not None
            ]  # fmt: skip
            if gpus:
                pods.append(PodReport.model_construct(
                    uid=f"pod-{sb.ref.uid}", namespace=sb.ref.namespace, name=sb.ref.name,
                    gpus=gpus,
                ))  # fmt: skip
        return GPUNodeReportStatus.model_construct(
            node=self.name, epoch=f"{self.name}-e{self.epoch_no}", sequence=self.sequence,
            reported_at=at, sample_interval_seconds=10.0, report_interval_seconds=900.0,
            gpus=[], pods=pods, conditions=[],
        )  # fmt: skip


# (node, GPU model, MIG profile, billing weight, GPUs per sandbox, memory per GPU in GiB)
LAYOUT = [
    ("n0", "H100", None, 1.0, [1, 2, 4, 1], 80),
    ("n1", "H100", "1g.10gb", 1 / 7, [1, 1, 1, 1, 1, 1, 1], 10),
    ("n1", "H100", "3g.40gb", 3 / 7, [1, 1], 40),
    ("n2", "A100", None, 1.0, [1, 2, 1, 1, 1], 40),
    ("n3", "H100", None, 1.0, [1, 1, 2], 80),
]
PEOPLE = [("alice", "vision"), ("bob", "vision"), ("carol", "nlp"), ("dan", "nlp"),
          ("erin", None), ("frank", "speech"), ("grace", "speech")]  # fmt: skip


def _sessions(rng: random.Random) -> list[tuple[datetime, datetime]]:
    """Long working sessions with short gaps: about 90 % of the time held."""
    sessions, at = [], START + timedelta(minutes=rng.randrange(0, 240))
    while at < END:
        length = timedelta(minutes=rng.randrange(6 * 60, 96 * 60))
        sessions.append((at, min(END, at + length)))
        at += length + timedelta(minutes=rng.randrange(20, 8 * 60))
    return sessions


def build_nodes(seed: int = 11) -> list[Node]:
    rng = random.Random(seed)
    nodes: dict[str, Node] = {}
    index = 0
    for node, model, mig, weight, counts, memory in LAYOUT:
        for gpus in counts:
            owner, team = PEOPLE[index % len(PEOPLE)]
            uid = f"sb-{index:02d}"
            ref = SandboxRef(
                uid=uid, name=f"{owner}-{uid}", namespace=f"team-{team or 'misc'}",
                owner=owner, team=team, cost_center=f"CC-{100 + index % 3}" if team else None,
                sandbox_class=f"{model.lower()}-{mig or 'full'}", gpu_model=model,
                mig_profile=mig, billing_weight=weight, budget=f"team-{team}" if team else None,
            )  # fmt: skip
            sandbox = Sandbox(
                ref=ref,
                gpus=[f"GPU-{node}-{index:02d}-{g}" for g in range(gpus)],
                utilization=rng.choice([0.0, 0.05, 0.3, 0.6, 0.95]),
                memory_bytes=rng.randrange(2, memory + 1) * GIB,
                sessions=_sessions(rng),
            )
            nodes.setdefault(node, Node(node, [])).sandboxes.append(sandbox)
            index += 1
    return list(nodes.values())


def _down(node: str, at: datetime) -> bool:
    return any(a <= at < b for a, b in OUTAGES.get(node, []))


@dataclass(frozen=True, slots=True)
class Month:
    october: ExportResult
    november: ExportResult
    sink: Path
    held_gpu_hours: float  # weighted GPU-hours the simulation held, October 31 and November


def generate_month(root: Path, settings: ExportSettings | None = None) -> Month:
    """Write the ledger of 31 Oct - 30 Nov under `root/ledger` and export both periods."""
    settings = settings or ExportSettings(summary_chart=False)  # the PNG is not under test
    store = open_store(str(root / "ledger"))
    sink = str(root / "export")
    nodes = build_nodes()
    refs = {f"pod-{sb.ref.uid}": sb.ref for n in nodes for sb in n.sandboxes}
    cursors, book = checkpoint.load(store)
    october: ExportResult | None = None
    restarts = list(OPERATOR_RESTARTS)
    now = START
    while now < END + 2 * TICK:
        step_end = now + TICK
        for node in nodes:
            node.advance(now, min(step_end, END))
            restart = AGENT_RESTARTS.get(node.name)
            if restart is not None and now <= restart < step_end:
                node.restart()  # counters not yet published are lost, as with a crashed agent
        now = step_end
        epoch_changed = False
        for node in nodes:
            report = node.report(now)
            if not _down(node.name, now):
                folded = fold_report(cursors, node.name, report, refs)
                book.add(folded.deltas)
                epoch_changed |= folded.epoch_changed
        card = CARDS[1] if now >= EUR_FROM else CARDS[0]
        closed = book.close(now, cursors.node_progress(), card, grace=GRACE)
        if closed or epoch_changed:  # the loop's commit rule, with a long checkpoint interval
            checkpoint.commit(store, closed, cursors, book)
        if closed and book.closed_through is not None:
            store.set_watermark(book.closed_through)
        if restarts and now >= restarts[0]:
            restarts.pop(0)
            # The operator crashes: a new process continues from the last commit; folding the
            # next reports (cumulative counters) brings back what the lost passes had seen.
            cursors, book = checkpoint.load(store)
        if october is None and now >= NOVEMBER + timedelta(hours=1):
            # The scheduled export closes October while n3 is still unreachable.
            october = export_period("2026-10", store, sink, settings=settings, final=True)
    assert october is not None
    november = export_period("2026-11", store, sink, settings=settings, final=True)
    held = sum(
        max(0.0, (min(END, b) - max(START, a)).total_seconds())
        * len(sb.gpus) * sb.ref.billing_weight / 3600
        for n in nodes for sb in n.sandboxes for a, b in sb.sessions
    )  # fmt: skip
    return Month(october, november, Path(sink), held)
