"""Charts for the sales-ops page, drawn server-side as SVG from the bundle's own numbers.

They depend only on the bundle, so they are drawn once per model version and cached. Text is stored as
outlines, so a chart looks the same in any browser whatever fonts it has, and nothing is fetched to show it.
"""

from __future__ import annotations

import base64
import io
import threading
from collections import OrderedDict
from typing import Any

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

from training.bundle import Bundle
from training.wording import Wording

IMPORTANCE_TOP = 10
CACHED_VERSIONS = 4  # the serving model, plus a few old ones while a reload is in flight
BLUE, LIGHT_BLUE, GREY, GREEN, INK = "#2563eb", "#93c5fd", "#9ca3af", "#16a34a", "#1f2937"
_STYLE = {
    "svg.fonttype": "path",
    "svg.hashsalt": "leadscore",  # stable element ids: the same bundle always gives the same bytes
    "font.size": 10,
    "axes.edgecolor": "#d1d5db",
    "axes.labelcolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": "#4b5563",
    "ytick.color": "#4b5563",
    "legend.frameon": False,
}

_cache: OrderedDict[str, list[dict[str, str]]] = OrderedDict()
_lock = threading.Lock()


def field_label(name: str, wording: Wording | None = None) -> str:
    """A field name as people read it: the spec's `name` ("Home owner"), else owns_home → Owns home."""
    text = wording.field_name(name) if wording is not None else name.replace("_", " ")
    return text[:1].upper() + text[1:]


def _new_figure(width: float = 6.0, height: float = 3.8) -> Figure:
    """A figure of its own, never registered with pyplot, so concurrent requests share no state."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasSVG(figure)
    return figure


def _svg_data_uri(figure: Figure) -> str:
    """The figure as an SVG data URI, which an <img> shows without any further request (and never runs)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, facecolor="white")
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _percent_axis(axis: Any) -> None:
    axis.set_major_formatter("{x:.0%}")


def gain_chart(deciles: list[dict[str, Any]], base_rate: float) -> Figure:
    """Cumulative gain: the share of all conversions reached by working the best-scored leads first."""
    shares = [0.0] + [row["cumulative_leads_share"] for row in deciles]
    gains = [0.0] + [row["cumulative_gain"] or 0.0 for row in deciles]
    figure = _new_figure()
    axes = figure.add_subplot()
    axes.plot([0, base_rate, 1], [0, 1, 1], color=GREEN, alpha=0.5, linestyle=":", label="Perfect ranking")
    axes.fill_between(shares, shares, gains, color=LIGHT_BLUE, alpha=0.35, linewidth=0)
    axes.plot(shares, gains, color=BLUE, marker="o", markersize=4, linewidth=2.2, label="Leads ranked by score")
    axes.plot([0, 1], [0, 1], color=GREY, linestyle="--", label="Leads in random order")
    top = deciles[1] if len(deciles) > 1 else deciles[0]
    axes.annotate(
        f"Top {top['cumulative_leads_share']:.0%} of leads:\n{top['cumulative_gain']:.0%} of conversions",
        xy=(top["cumulative_leads_share"], top["cumulative_gain"]),
        xytext=(0.42, 0.3),
        arrowprops={"arrowstyle": "->", "color": INK},
        fontsize=9,
        color=INK,
    )
    axes.set(xlim=(0, 1), ylim=(0, 1.02))
    _percent_axis(axes.xaxis)
    _percent_axis(axes.yaxis)
    axes.set_xlabel("Share of leads worked, best scores first")
    axes.set_ylabel("Share of conversions reached")
    axes.legend(loc="lower right", fontsize=8.5)
    axes.grid(alpha=0.25)
    return figure


def lift_chart(deciles: list[dict[str, Any]], base_rate: float) -> Figure:
    """Conversion rate of each tenth of leads, best first, against the overall rate."""
    labels = [f"{row['decile']}" for row in deciles]
    rates = [row["rate"] for row in deciles]
    figure = _new_figure()
    axes = figure.add_subplot()
    colours = [BLUE if rate >= base_rate else LIGHT_BLUE for rate in rates]
    bars = axes.bar(labels, rates, color=colours, width=0.7)
    axes.axhline(base_rate, color=INK, linestyle="--", linewidth=1.2, zorder=1)
    axes.text(
        len(labels) - 0.5, base_rate, f"overall {base_rate:.1%}", ha="right", va="bottom", fontsize=8.5, color=INK
    )
    for bar, row in zip(bars, deciles, strict=True):
        if row["lift"] is not None:
            axes.text(
                bar.get_x() + bar.get_width() / 2,
                bar.get_height(),
                f"{row['lift']:.1f}×",
                ha="center",
                va="bottom",
                fontsize=8,
                color=INK,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6, "alpha": 0.8},
            )
    axes.set_ylim(0, max([*rates, base_rate]) * 1.15 or 1)
    _percent_axis(axes.yaxis)
    axes.set_xlabel("Tenth of leads by score (1 = best 10%)")
    axes.set_ylabel("Conversion rate")
    axes.grid(axis="y", alpha=0.25)
    return figure


def calibration_chart(points: list[dict[str, Any]]) -> Figure:
    """Predicted chance against what happened, per group of leads: on the diagonal means honest chances."""
    predicted = [point["mean_predicted"] for point in points]
    observed = [point["observed_rate"] for point in points]
    # conversions are rare, so zoom on the range the points use rather than the whole unit square
    limit = min(1.0, max(0.05, max(predicted + observed, default=0.0) * 1.1))
    figure = _new_figure()
    axes = figure.add_subplot()
    axes.plot([0, limit], [0, limit], color=GREY, linestyle="--", label="Perfectly honest chances")
    axes.plot(predicted, observed, color=BLUE, marker="o", markersize=5, linewidth=2, label="This model")
    axes.set(xlim=(0, limit), ylim=(0, limit))
    _percent_axis(axes.xaxis)
    _percent_axis(axes.yaxis)
    axes.set_xlabel("Predicted chance of converting (group average)")
    axes.set_ylabel("Share that actually converted")
    axes.legend(loc="upper left", fontsize=8.5)
    axes.grid(alpha=0.25)
    return figure


def importance_chart(importance: list[dict[str, Any]], wording: Wording | None = None) -> Figure:
    """The fields that move the score most, largest on top, so the chart reads like a ranking."""
    ranked = sorted(importance, key=lambda row: row.get("permutation_auc_drop") or 0.0, reverse=True)
    top = ranked[:IMPORTANCE_TOP]
    figure = _new_figure(height=max(2.4, 0.8 + 0.3 * len(top)))
    axes = figure.add_subplot()
    if not top:
        axes.text(0.5, 0.5, "No importance recorded", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return figure
    names = [field_label(row["field"], wording) for row in reversed(top)]
    values = [max(0.0, float(row.get("permutation_auc_drop") or 0.0)) for row in reversed(top)]
    axes.barh(names, values, color=BLUE, height=0.65)
    axes.set_xlabel("Ranking quality lost without this field (drop in AUC)")
    axes.grid(axis="x", alpha=0.25)
    axes.spines["left"].set_visible(False)
    axes.tick_params(axis="y", length=0)
    return figure


def draw_charts(bundle: Bundle) -> list[dict[str, str]]:
    """Every chart of the page for one bundle: id, title, a one-line reading guide and the SVG image."""
    metrics = bundle.metrics
    deciles = metrics["lift_by_decile"]
    base_rate = float(metrics["base_rate"])
    specs = [
        (
            "gain",
            "Work the best leads first",
            "How many of all conversions you reach by calling leads in score order; the grey line is random order.",
            lambda: gain_chart(deciles, base_rate),
        ),
        (
            "lift",
            "Conversion rate by score band",
            "Each bar is a tenth of the test leads, best scores on the left; the label says how many times "
            "the overall rate it converts at.",
            lambda: lift_chart(deciles, base_rate),
        ),
        (
            "calibration",
            "Are the predicted chances honest?",
            "Leads grouped by predicted chance: points on the dashed line mean a lead given 20% converts "
            "about 20% of the time.",
            lambda: calibration_chart(metrics.get("calibration_curve") or []),
        ),
        (
            "importance",
            "What drives the score",
            "How much worse the model ranks leads when a field is scrambled: the longer the bar, the more it matters.",
            lambda: importance_chart(bundle.importance, bundle.wording),
        ),
    ]
    charts = []
    with matplotlib.rc_context(_STYLE):
        for chart_id, title, caption, draw in specs:
            charts.append({"id": chart_id, "title": title, "caption": caption, "image": _svg_data_uri(draw())})
    return charts


def charts_for(bundle: Bundle) -> list[dict[str, str]]:
    """The page's charts for this bundle, drawn on first use and kept per model version."""
    # One drawing at a time: rc_context changes matplotlib's global settings, and concurrent first requests
    # for a version wait for its charts rather than draw them twice.
    with _lock:
        charts = _cache.get(bundle.version)
        if charts is None:
            charts = draw_charts(bundle)
            _cache[bundle.version] = charts
            while len(_cache) > CACHED_VERSIONS:
                _cache.popitem(last=False)
        else:
            _cache.move_to_end(bundle.version)
        return charts
