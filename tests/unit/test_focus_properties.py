"""Property: whatever the ledger holds, the FOCUS table conserves rows, quantities and cost."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from sandboxer.chargeback.focus_table import build_focus_table
from sandboxer.chargeback.ledger_table import read_ledger_table
from sandboxer.chargeback.periods import parse_period
from sandboxer.chargeback.settings import ExportSettings
from sandboxer.ledger.rows import UsageRow, encode_rows
from tests.usage_samples import OCT, usage_row

rows = st.builds(
    lambda day, hour, uid, team, model, alloc, busy_share, revision: usage_row(
        OCT + timedelta(days=day, hours=hour),
        f"uid-{uid}",
        owner=f"user-{uid % 3}",
        team=team,
        gpu_model=model,
        allocated=alloc,
        busy=alloc * busy_share,
        revision=revision,
    ),
    st.integers(0, 60),
    st.integers(0, 23),
    st.integers(0, 5),
    st.sampled_from([None, "vision", 'q"uote\\team']),
    st.sampled_from(["H100", "A100"]),
    st.floats(0, 8, allow_nan=False),
    st.floats(0, 1, allow_nan=False),
    st.integers(0, 2),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(rows, max_size=30))
def test_focus_table_conserves_the_ledger(ledger_rows: list[UsageRow]) -> None:
    period = parse_period("2026-11")
    table = build_focus_table(
        read_ledger_table([encode_rows(ledger_rows)]), period, ExportSettings()
    )
    assert table.num_rows == len(ledger_rows)
    expected = sum(round(r.cost, 9) for r in ledger_rows)
    assert math.isclose(pc.sum(table["BilledCost"]).as_py() or 0.0, expected, abs_tol=1e-6)
    late = sum(1 for r in ledger_rows if r.hour < period.start)
    corrections = table["ChargeClass"].to_pylist()
    assert corrections.count("Correction") == late
    assert corrections.count(None) == len(ledger_rows) - late
    assert table["BilledCost"].null_count == 0
    util = [u for u in table["x_GpuUtilizationAvg"].to_pylist() if u is not None]
    assert all(0.0 <= u <= 1.0 for u in util)
    tagged_teams = {json.loads(t).get("team") for t in table["Tags"].to_pylist()}
    assert tagged_teams == {r.team for r in ledger_rows}  # escaping survives quotes
