"""Holdout evaluation: how well scores rank and how honest their probabilities are, in numbers and pictures.

Every function takes numpy arrays and returns plain Python values (floats, ints, lists, dicts, None), so
results can go straight into JSON reports and tracking runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

LOG_LOSS_CLIP = 1e-15
DECILES = 10
IMPORTANCE_TOP = 20
# Ties in the score are broken by a fixed shuffle, so the order of rows in the holdout cannot move the lift.
TIE_BREAK_SEED = 0
SCORE_LABELS = {
    "model": "Model",
    "model_uncalibrated": "Model before calibration",
    "logistic_baseline": "Simple baseline (logistic regression)",
    "base_rate": "No model (everyone gets the average)",
}


# ---------------------------------------------------------------- input checks


def _as_labels(y: np.ndarray) -> np.ndarray:
    """Outcomes as a 1-D int array of 0/1, refusing anything else before it skews a metric."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be one outcome per lead (1-D); got shape {y.shape}")
    if y.size == 0:
        raise ValueError("y is empty; evaluation needs at least one lead")
    if y.dtype.kind not in "biuf":
        raise ValueError(f"y must hold 0/1 outcomes; got dtype {y.dtype}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must hold only 0 (not converted) and 1 (converted)")
    return y.astype(int)


def _as_probabilities(p: np.ndarray, n: int, name: str = "p") -> np.ndarray:
    """Scores as a 1-D float array of probabilities, one per lead."""
    p = np.asarray(p)
    if p.ndim != 1:
        raise ValueError(f"{name} must be one probability per lead (1-D); got shape {p.shape}")
    if p.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold probabilities; got dtype {p.dtype}")
    if p.size != n:
        raise ValueError(f"y and {name} differ in length ({n} vs {p.size}); pass one probability per lead")
    p = p.astype(float)
    if not np.isfinite(p).all():
        raise ValueError(f"{name} holds NaN or infinite values; every lead needs a probability")
    if p.min() < 0 or p.max() > 1:
        raise ValueError(f"{name} must lie in [0, 1]; got values from {p.min():.4g} to {p.max():.4g}")
    return p


def _validated(y: np.ndarray, p: np.ndarray, name: str = "p") -> tuple[np.ndarray, np.ndarray]:
    """Outcomes and probabilities checked together, so every public function refuses the same mistakes."""
    labels = _as_labels(y)
    return labels, _as_probabilities(p, labels.size, name)


def _check_bins(bins: int) -> None:
    """A bin count below one would silently produce no calibration evidence."""
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"bins must be a whole number of at least 1; got {bins!r}")


def _ratio(numerator: float, denominator: float) -> float | None:
    """A share that is None, not NaN, when there is nothing to divide by (JSON has no NaN)."""
    return float(numerator / denominator) if denominator else None


# ---------------------------------------------------------------- calibration


def _uniform_bin_ids(p: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin per probability; p = 1 belongs to the last bin, not an extra one."""
    return np.minimum((p * bins).astype(int), bins - 1)


def _quantile_bin_ids(p: np.ndarray, bins: int) -> np.ndarray:
    """Bins holding roughly equal numbers of leads; repeated edges (ties) collapse instead of leaving gaps."""
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    return np.searchsorted(edges[1:-1], p, side="right")


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """How far, on average per lead, predicted chances sit from observed rates (equal-width bins)."""
    y, p = _validated(y, p)
    _check_bins(bins)
    ids = _uniform_bin_ids(p, bins)
    counts = np.bincount(ids, minlength=bins)
    gap = np.abs(np.bincount(ids, weights=y, minlength=bins) - np.bincount(ids, weights=p, minlength=bins))
    # sum_b (n_b / N) * |mean(y_b) - mean(p_b)| equals sum_b |sum(y_b) - sum(p_b)| / N
    return float(gap[counts > 0].sum() / y.size)


def calibration_curve_points(y: np.ndarray, p: np.ndarray, bins: int = 10, strategy: str = "quantile") -> list[dict]:
    """Points of a reliability diagram: predicted versus observed conversion, one per non-empty bin."""
    y, p = _validated(y, p)
    _check_bins(bins)
    if strategy == "quantile":
        ids = _quantile_bin_ids(p, bins)
    elif strategy == "uniform":
        ids = _uniform_bin_ids(p, bins)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform'; got {strategy!r}")
    points = []
    for b in np.unique(ids):
        in_bin = ids == b
        points.append(
            {
                "bin": len(points) + 1,
                "mean_predicted": float(p[in_bin].mean()),
                "observed_rate": float(y[in_bin].mean()),
                "count": int(in_bin.sum()),
            }
        )
    return points


# ---------------------------------------------------------------- summary metrics


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Log loss with clipped probabilities, so one confident miss costs a lot but not infinity."""
    q = np.clip(p, LOG_LOSS_CLIP, 1 - LOG_LOSS_CLIP)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def _ranking_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """ROC AUC and average precision, or None when only one outcome occurs and ranking means nothing."""
    if np.unique(y).size < 2:
        return {"roc_auc": None, "pr_auc": None}
    return {"roc_auc": float(roc_auc_score(y, p)), "pr_auc": float(average_precision_score(y, p))}


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | int | None]:
    """The headline numbers for one score: ranking (AUCs), probability quality (Brier, log loss, ECE), size."""
    y, p = _validated(y, p)
    return {
        **_ranking_metrics(y, p),
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": _log_loss(y, p),
        "ece": expected_calibration_error(y, p),
        "base_rate": float(y.mean()),
        "n": int(y.size),
        "positives": int(y.sum()),
    }


def evaluate_scores(y: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, dict]:
    """Metrics for several scores on the same leads, so the model is always read next to its baselines."""
    labels = _as_labels(y)
    return {name: classification_metrics(labels, _as_probabilities(p, labels.size, name)) for name, p in scores.items()}


# ---------------------------------------------------------------- ranking by decile and grade


def _rank_descending(p: np.ndarray) -> np.ndarray:
    """Lead indices from highest to lowest score; ties broken by a fixed shuffle, not by row order."""
    shuffle = np.random.default_rng(TIE_BREAK_SEED).permutation(p.size)
    return shuffle[np.argsort(-p[shuffle], kind="stable")]


def lift_by_decile(y: np.ndarray, p: np.ndarray) -> list[dict]:
    """What sales gets by working the best-scored tenth of leads first, then the next, and so on."""
    y, p = _validated(y, p)
    if y.size < DECILES:
        raise ValueError(f"lift by decile needs at least {DECILES} leads; got {y.size}")
    groups = np.array_split(_rank_descending(p), DECILES)
    base_rate, total_converted = float(y.mean()), int(y.sum())
    rows, leads_so_far, converted_so_far = [], 0, 0
    for decile, members in enumerate(groups, start=1):
        leads, converted = int(members.size), int(y[members].sum())
        leads_so_far += leads
        converted_so_far += converted
        rate = converted / leads
        cumulative_rate = converted_so_far / leads_so_far
        rows.append(
            {
                "decile": decile,
                "leads": leads,
                "converted": converted,
                "rate": float(rate),
                "lift": _ratio(rate, base_rate),
                "cumulative_leads_share": float(leads_so_far / y.size),
                "cumulative_gain": _ratio(converted_so_far, total_converted),
                "cumulative_lift": _ratio(cumulative_rate, base_rate),
            }
        )
    return rows


def precision_recall_at(y: np.ndarray, p: np.ndarray, thresholds: dict[str, float]) -> dict[str, dict]:
    """For each grade cut: how many leads reach it, how many of those convert, how many conversions it catches."""
    y, p = _validated(y, p)
    positives = int(y.sum())
    report = {}
    for grade, threshold in thresholds.items():
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold for grade {grade!r} must lie in [0, 1]; got {threshold}")
        reached = p >= threshold
        hits = int(y[reached].sum())
        report[grade] = {
            "threshold": float(threshold),
            "share_of_leads": float(reached.mean()),
            "precision": _ratio(hits, int(reached.sum())),
            "recall": _ratio(hits, positives),
        }
    return report


# ---------------------------------------------------------------- plots


def _label(name: str) -> str:
    """A score's name as a sales-ops reader would say it."""
    return SCORE_LABELS.get(name, name.replace("_", " "))


def _line_style(rank: int) -> dict[str, object]:
    """The first score bold and on top, the rest thinner and dashed: a model and its baselines often overlap."""
    styles = ("-", "--", "-.", ":")
    return {"linewidth": 2.5 if rank == 0 else 1.5, "linestyle": styles[rank % len(styles)], "zorder": 10 - rank}


def _new_figure(width: float = 6.5, height: float = 5.0) -> Figure:
    """A figure drawn by Agg and never registered with pyplot: no global state, nothing left open."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    """Write a figure as PNG, creating its folder, and hand back where it went."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=120)
    return path


def _validated_scores(y: np.ndarray, scores: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Outcomes plus every named score checked against them, for the plots that compare scores."""
    labels = _as_labels(y)
    if not scores:
        raise ValueError("scores is empty; pass at least one named probability array")
    return labels, {name: _as_probabilities(p, labels.size, name) for name, p in scores.items()}


def plot_roc(y: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    """ROC curves of several scores on one chart, so a model's edge over its baselines is visible."""
    y, scores = _validated_scores(y, scores)
    if np.unique(y).size < 2:
        raise ValueError("a ROC curve needs both converted and unconverted leads; the holdout has only one kind")
    figure = _new_figure()
    axes = figure.add_subplot()
    for rank, (name, p) in enumerate(scores.items()):
        false_alarms, caught, _ = roc_curve(y, p)
        axes.plot(false_alarms, caught, label=f"{_label(name)} (AUC {roc_auc_score(y, p):.3f})", **_line_style(rank))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="Random order (AUC 0.500)")
    axes.set(xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
    axes.set_xlabel("Share of non-converting leads flagged")
    axes.set_ylabel("Share of converting leads flagged")
    axes.set_title("How well the score separates converters from the rest")
    axes.legend(loc="lower right", fontsize="small")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def plot_calibration(y: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    """Reliability diagram: does a lead scored 20% convert about 20% of the time?"""
    y, scores = _validated_scores(y, scores)
    figure = _new_figure()
    axes = figure.add_subplot()
    highest = 0.0
    for rank, (name, p) in enumerate(scores.items()):
        points = calibration_curve_points(y, p)
        predicted = [pt["mean_predicted"] for pt in points]
        observed = [pt["observed_rate"] for pt in points]
        axes.plot(predicted, observed, marker="o", markersize=5, label=_label(name), **_line_style(rank))
        highest = max(highest, *predicted, *observed)
    # Converting leads are rare, so zoom on the range the points use instead of the whole unit square.
    limit = min(1.0, max(0.05, highest * 1.1))
    axes.plot([0, limit], [0, limit], linestyle="--", color="grey", label="Perfectly honest chances")
    axes.set(xlim=(0, limit), ylim=(0, limit), aspect="equal")
    axes.set_xlabel("Predicted chance of converting (average per group of leads)")
    axes.set_ylabel("Share of those leads that actually converted")
    axes.set_title("Do predicted chances match what happened?")
    axes.legend(loc="upper left", fontsize="small")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def plot_gain(y: np.ndarray, p: np.ndarray, path: Path) -> Path:
    """Cumulative gain: the share of conversions reached by contacting the best-scored leads first."""
    y, p = _validated(y, p)
    if not y.any():
        raise ValueError("a gain chart needs at least one converted lead; the holdout has none")
    deciles = lift_by_decile(y, p)
    shares = [0.0] + [row["cumulative_leads_share"] for row in deciles]
    gains = [0.0] + [row["cumulative_gain"] for row in deciles]
    base_rate = float(y.mean())
    figure = _new_figure()
    axes = figure.add_subplot()
    axes.plot([0, base_rate, 1], [0, 1, 1], color="green", alpha=0.4, linestyle=":", label="Best possible ranking")
    axes.plot(shares, gains, marker="o", linewidth=2, label="Leads ranked by score")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="Leads in random order")
    first = deciles[0]
    axes.annotate(
        f"Top 10% of leads: {first['cumulative_gain']:.0%} of conversions",
        xy=(first["cumulative_leads_share"], first["cumulative_gain"]),
        xytext=(0.3, 0.25),
        arrowprops={"arrowstyle": "->", "color": "black"},
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "lightgrey"},
        fontsize="small",
    )
    axes.set(xlim=(0, 1), ylim=(0, 1.02), aspect="equal")
    axes.set_xticks(np.linspace(0, 1, DECILES + 1))
    axes.xaxis.set_major_formatter("{x:.0%}")
    axes.yaxis.set_major_formatter("{x:.0%}")
    axes.set_xlabel("Share of leads contacted (ranked by score)")
    axes.set_ylabel("Share of conversions captured")
    axes.set_title("How many conversions you reach by working the best leads first")
    axes.legend(loc="lower right", fontsize="small")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def plot_importance(importance: list[tuple[str, float]], path: Path, title: str = "Feature importance") -> Path:
    """Horizontal bars of the strongest drivers, largest on top, so the chart reads like a ranking."""
    top = sorted(importance, key=lambda item: item[1], reverse=True)[:IMPORTANCE_TOP]
    figure = _new_figure(width=7.0, height=max(2.5, 0.9 + 0.32 * len(top)))
    axes = figure.add_subplot()
    if top:
        names = [name for name, _ in reversed(top)]
        values = [float(value) for _, value in reversed(top)]
        axes.barh(names, values, color="tab:blue")
        axes.set_xlabel("Importance (higher = matters more to the score)")
        axes.grid(axis="x", alpha=0.3)
    else:
        axes.text(0.5, 0.5, "No feature importance available", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
    axes.set_title(title)
    return _save(figure, path)


def write_plots(
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    model_key: str,
    importance: list[tuple[str, float]],
    out_dir: Path,
) -> dict[str, Path]:
    """The standard evaluation charts for a training run, written side by side into one folder."""
    if model_key not in scores:
        raise ValueError(f"model_key {model_key!r} is not among the scores; choose one of: {', '.join(scores)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "roc": plot_roc(y, scores, out_dir / "roc.png"),
        "calibration": plot_calibration(y, scores, out_dir / "calibration.png"),
        "gain": plot_gain(y, scores[model_key], out_dir / "gain.png"),
        "importance": plot_importance(importance, out_dir / "importance.png"),
    }
