"""A PNG of the dashboard drawn from a Prometheus's answers to its queries (docs/install.md).

Not Grafana: one small matplotlib chart per panel, time series as lines and the rest as bars of
their latest values, so the picture in the docs shows what a real Prometheus returned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from sandboxer.deploy.dashboard import PANELS

# legend -> [(unix time, value)], per panel title
Series = Mapping[str, Sequence[tuple[float, float]]]


def legend(template: str, labels: Mapping[str, str]) -> str:
    """Grafana's `{{label}}` legend format filled from a series' labels."""
    text = template
    for key, val in labels.items():
        text = text.replace("{{" + key + "}}", val)
    return text


def render(answers: Mapping[str, Series], out: Path, columns: int = 3) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = math.ceil(len(PANELS) / columns)
    figure = Figure(figsize=(6 * columns, 3.2 * rows), dpi=80)
    FigureCanvasAgg(figure)
    for index, panel in enumerate(PANELS):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.set_title(panel.title, fontsize=10)
        series = {k: v for k, v in answers.get(panel.title, {}).items() if v}
        if panel.kind == "timeseries":
            start = min((p[0][0] for p in series.values()), default=0.0)
            for name, points in sorted(series.items()):
                axes.plot([t - start for t, _ in points], [v for _, v in points], label=name)
            axes.set_xlabel("seconds", fontsize=8)
        else:
            names = sorted(series)
            axes.barh(names, [series[n][-1][1] for n in names], color="#1f5f99")
        if panel.unit == "percentunit":
            value_axis = axes.yaxis if panel.kind == "timeseries" else axes.xaxis
            value_axis.set_major_formatter("{x:.0%}")
        if series and panel.kind == "timeseries":
            axes.legend(fontsize=7, loc="upper left")
        axes.tick_params(labelsize=7)
    figure.suptitle("Sandboxer: GPU sandboxes (answers of a real Prometheus)", fontsize=12)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    return out
