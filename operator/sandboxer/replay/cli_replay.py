"""The body of `sandboxer replay`: read the inputs, replay each policy, print a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.chargeback.cli_export import local_dir
from sandboxer.ledger.store import open_store
from sandboxer.replay.inputs import (
    ReplayInputError,
    load_policy,
    parse_sweep,
    read_window,
    window,
)
from sandboxer.replay.simulate import Figures, by_sandbox, recorded, replay, sandbox_policy
from sandboxer.storage import StorageError

Echo = Callable[..., None]
FORMATS = ("table", "json")


def run_replay(
    ledger: str,
    idle_policy: str,
    *,
    period: str | None = None,
    since: str | None = None,
    until: str | None = None,
    fmt: str = "table",
    idle_after: str | None = None,
    chart: str | None = None,
    echo: Echo,
) -> int:
    """Returns the exit code: 0 done, 2 bad input (one line on stderr), 1 storage failed."""
    try:
        if fmt not in FORMATS:
            raise ReplayInputError(f"--format {fmt!r}: choose table or json")
        policy = load_policy(idle_policy)
        sweep = parse_sweep(idle_after) if idle_after is not None else None
        win = window(period, since, until)
        local = local_dir(ledger)
        if local is not None and not local.is_dir():
            raise ReplayInputError(f"--ledger {ledger!r}: no such directory (is the path right?)")
        store = open_store(ledger)
        data = read_window(store, win)
        histories = [
            rows for rows in by_sandbox(data.rows).values() if rows[0].sandbox_class == policy.name
        ]
        if not histories:
            raise ReplayInputError(
                f"no telemetry of SandboxClass {policy.name} for {win.label} in {store.url}"
            )
    except (ReplayInputError, ValueError) as exc:
        echo(f"error: {exc}", err=True)
        return 2
    except StorageError as exc:
        echo(f"replay failed: {exc}", err=True)
        return 1
    actual = recorded(histories, data.end)
    results: list[tuple[str, Figures]] = []
    choices: list[str | None] = [*sweep] if sweep else [None]
    for after in choices:
        cls = policy.spec
        if after is not None:
            cls = cls.model_copy(update={"idle": cls.idle.model_copy(update={"after": after})})
        results.append(
            (cls.idle.after, replay(histories, _policies(policy.name, cls, after is None),
                                    data.since, data.end))
        )  # fmt: skip
    if chart is not None:
        from sandboxer.replay.chart import sweep_png

        try:
            Path(chart).write_bytes(sweep_png(policy.name, results, actual))
        except OSError as exc:
            echo(f"error: --chart {chart}: cannot write it ({exc.strerror})", err=True)
            return 2
    head: dict[str, Any] = {
        "class": policy.name,
        "ledger": store.url,
        "since": _iso(data.since),
        "until": _iso(data.end),
        "sandboxes": len(histories),
        "missingHours": [{"from": _iso(a), "to": _iso(b)} for a, b in data.missing],
    }
    if fmt == "json":
        if sweep is None:
            doc = {**head, "idleAfter": results[0][0], **_what_if(results[0][1])}
        else:
            doc = {**head, "sweep": [{"idleAfter": a, **_what_if(f)} for a, f in results]}
        doc["recorded"] = actual.to_json()
        echo(json.dumps(doc, indent=2))
        return 0
    for line in _table(head, actual, results, sweep is not None):
        echo(line)
    return 0


def _policies(name: str, cls: SandboxClassSpec, own_after: bool) -> Any:
    return lambda row: sandbox_policy(name, cls, row, own_after=own_after)


def _what_if(figures: Figures) -> dict[str, Any]:
    doc = figures.to_json()
    doc["exhaustions"] = None  # budgets are not replayed: nothing to say
    return doc


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _hm(text: str) -> str:
    """An ISO time for people: to the second, in UTC."""
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"


def _table(
    head: dict[str, Any], actual: Figures, results: list[tuple[str, Figures]], sweep: bool
) -> list[str]:
    lines = [
        f"Replay of SandboxClass {head['class']}: {head['sandboxes']} sandbox(es), "
        f"{_hm(head['since'])} to {_hm(head['until'])} ({head['ledger']})"
    ]
    missing = head["missingHours"]
    if missing:
        spans = ", ".join(f"{_hm(m['from'])} to {_hm(m['to'])}" for m in missing)
        lines.append(f"Hours without telemetry (not replayed): {spans}")
    else:
        lines.append("Hours without telemetry: none")
    lines.append("")
    header: tuple[str, ...] = (
        "policy",
        "reclaimed GPU-h",
        "reclaims",
        "premature",
        "exhaustions",
        "sandboxes",
    )
    table = [header]
    table.append(_row("recorded", actual, str(actual.exhaustions)))
    for after, figures in results:
        table.append(_row(f"idle.after {after}", figures, "-"))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for cells in table:
        first = cells[0].ljust(widths[0])
        rest = "  ".join(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        lines.append(f"{first}  {rest}")
    if not sweep:
        figures = results[0][1]
        lines.append("")
        lines.append(f"Interrupted under idle.after {results[0][0]}:" if figures.interrupted
                     else f"Nothing interrupted under idle.after {results[0][0]}.")  # fmt: skip
        for item in sorted(figures.interrupted, key=lambda i: (i.at, i.namespace, i.name)):
            lines.append(
                f"  {item.at:%Y-%m-%d %H:%M:%S} UTC  {item.owner}  "
                f"{item.namespace}/{item.name}  {item.reason}"
            )
    lines.append("")
    lines.append("Budgets are not replayed: exhaustions are shown for what was recorded only.")
    return lines


def _row(label: str, figures: Figures, exhaustions: str) -> tuple[str, ...]:
    return (
        label,
        f"{figures.reclaimed_gpu_hours:.3f}",
        str(figures.reclaims),
        str(figures.premature_reclaims),
        exhaustions,
        str(len({(i.namespace, i.name) for i in figures.interrupted})),
    )
