"""The PNG of a replay: GPU-hours reclaimed against premature reclaims, one point per window."""

from __future__ import annotations

import io
from collections.abc import Sequence

from sandboxer.replay.simulate import Figures


def sweep_png(class_name: str, results: Sequence[tuple[str, Figures]], actual: Figures) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    xs = [f.premature_reclaims for _, f in results]
    ys = [f.reclaimed_gpu_hours for _, f in results]
    axes.plot(xs, ys, marker="o", color="#1f5f99", label="replayed idle.after")
    for (after, _), x, y in zip(results, xs, ys, strict=True):
        axes.annotate(after, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    axes.scatter([actual.premature_reclaims], [actual.reclaimed_gpu_hours], marker="x",
                 color="#b03a2e", label="recorded", zorder=3)  # fmt: skip
    axes.set_xlabel("premature reclaims (owner back within 30 min)")
    axes.set_ylabel("GPU-hours reclaimed (billing-weighted)")
    axes.set_title(f"SandboxClass {class_name}: idle window sweep")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})  # same input, same bytes
    return buffer.getvalue()
