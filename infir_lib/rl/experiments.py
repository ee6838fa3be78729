"""The chapter's comparisons: arms x seeds, their curves and mean ± spread tables (thin helpers)."""

from __future__ import annotations

import statistics

CURVES = (("reward", "reward (accuracy + format)"), ("completions/mean_length", "completion length (tokens)"),
          ("kl", "KL to the reference"))


def run_arms(arms: dict[str, str], seeds: list[int], overrides: dict | None = None) -> dict[str, list]:
    """``{arm: config path}`` -> ``{arm: [RLResult per seed]}`` (each run cached by its config)."""
    from . import run

    return {name: [run(path, {**(overrides or {}), "seed": s}) for s in seeds] for name, path in arms.items()}


def metric(result, path: str) -> float:
    """``"ood_open.accuracy"`` -> result.summary["eval"]["ood_open"]["accuracy"]."""
    value = result.summary["eval"]
    for key in path.split("."):
        value = value[key]
    return float(value)


def per_seed(results: dict[str, list], path: str) -> dict[str, list[float]]:
    return {arm: [metric(r, path) for r in rs] for arm, rs in results.items()}


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.pstdev(values) if len(values) > 1 else 0.0)


def comparison_table(results: dict[str, list], columns: dict[str, str], start: dict | None = None):
    """A DataFrame: one row per arm, ``mean ± std`` over seeds for each ``{label: metric path}``."""
    import pandas as pd

    rows = []
    if start is not None:
        row = {"arm": "before RL (cold start)"}
        for label, path in columns.items():
            value = start
            for key in path.split("."):
                value = value[key]
            row[label] = f"{value:.3f}"
        rows.append(row)
    for arm, rs in results.items():
        row = {"arm": f"{arm} ({len(rs)} seeds)"}
        for label, path in columns.items():
            m, s = mean_std([metric(r, path) for r in rs])
            row[label] = f"{m:.3f} ± {s:.3f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("arm")


def plot_curves(results: dict[str, list], title: str, smooth: int = 3):
    """Reward, length and KL per GRPO step (all stages laid end to end; dotted lines = stage changes)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVES), figsize=(4.2 * len(CURVES), 3.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, (arm, rs) in enumerate(results.items()):
        for k, r in enumerate(rs):
            steps = list(range(1, len(r.history) + 1))
            for ax, (key, label) in zip(axes, CURVES):
                ys = [h.get(key, float("nan")) for h in r.history]
                if smooth > 1:
                    ys = [statistics.fmean(ys[max(0, i - smooth + 1): i + 1]) for i in range(len(ys))]
                ax.plot(steps, ys, color=colours[c % len(colours)], alpha=0.85 if k == 0 else 0.45,
                        label=arm if k == 0 else None)
                ax.set_title(label, fontsize=10)
                ax.set_xlabel("GRPO step")
            if c == 0 and k == 0:
                edges, last = [], r.history[0]["stage"] if r.history else None
                for i, h in enumerate(r.history):
                    if h["stage"] != last:
                        edges.append(i + 0.5)
                        last = h["stage"]
                for ax in axes:
                    for e in edges:
                        ax.axvline(e, color="grey", linestyle=":", linewidth=1)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
