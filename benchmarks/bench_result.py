"""The line every scenario prints last, in the shape `harness.run_once` reads.

`{"metrics": {...}, "unit_cost": float}` on one line: nested figures are flattened to
`outer_inner` keys so that a `Target` can name any of them.
"""

from __future__ import annotations

import json
from typing import Any


def flatten(figures: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}_"))
        else:
            flat[name] = value
    return flat


def result_line(figures: dict[str, Any], unit_cost: float) -> str:
    return json.dumps({"metrics": flatten(figures), "unit_cost": unit_cost})


def emit(figures: dict[str, Any], unit_cost: float) -> None:
    print(result_line(figures, unit_cost), flush=True)
