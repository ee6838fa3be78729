"""Render the reproduction scorecard from the results the chapter notebooks recorded.

Nothing in the scorecard is typed in: each row is read from the JSON a notebook wrote with
:func:`infir_lib.report.record_claim` (or :func:`record_comparison`), and a claim nobody recorded is
shown as "no result recorded" rather than left out.

Chapters that compare two arms over seeds should prefer :func:`record_comparison`: it computes the
verdict with :func:`~infir_lib.report.verdict_from_seeds` and stores the per-seed values in a shape
the scorecard can plot (``measured["arms"]``). Free-form ``measured`` dicts are rendered too: a list
of numbers becomes "mean ± standard deviation (n)".
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from . import CLAIMS, Verdict, load_claims, record_claim, verdict_from_seeds

NO_RESULT = "no result recorded"
VERDICT_COLOURS = {"reproduced": "#2e7d32", "not reproduced": "#c62828", "inconclusive": "#f9a825",
                   NO_RESULT: "#9e9e9e"}


def record_comparison(claim: int, *, experiment: str, metric: str, treatment: list[float], control: list[float],
                      labels: tuple[str, str] = ("treatment", "control"), seeds: list[int] | None = None,
                      higher_is_better: bool = True, margin: float = 0.0, notes: str = "",
                      extra: dict | None = None):
    """Record a two-arm experiment over seeds; the verdict is computed, never chosen by hand.

    ``treatment`` is the arm the paper says is better (e.g. filtered data), ``control`` the other
    (raw data); one value per seed, in the same seed order.
    """
    treatment, control = [float(x) for x in treatment], [float(x) for x in control]
    if seeds is not None and len(seeds) not in (len(treatment), 0):
        raise ValueError(f"claim {claim}: {len(seeds)} seeds but {len(treatment)} treatment values")
    verdict = verdict_from_seeds(treatment, control, higher_is_better=higher_is_better, margin=margin)
    measured = {"metric": metric, "higher_is_better": higher_is_better, "margin": margin,
                "arms": {labels[0]: treatment, labels[1]: control}, **(extra or {})}
    return record_claim(claim, experiment=experiment, measured=measured, verdict=verdict, seeds=seeds, notes=notes)


def _num(x: float) -> str:
    if isinstance(x, bool):
        return str(x)
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) >= 0.01 else f"{x:.2e}"


def _is_numbers(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)


def mean_spread(values: list[float]) -> str:
    """``mean ± population standard deviation (n=k)``; the spread is over seeds.

    Both are printed to the decimal of the spread's second significant digit, so the number of
    digits shown says how precisely the seeds pin the mean down.
    """
    values = [float(x) for x in values]
    if len(values) == 1:
        return f"{_num(values[0])} (1 seed)"
    mean, sd = statistics.fmean(values), statistics.pstdev(values)
    if sd == 0 or not math.isfinite(sd):
        return f"{_num(mean)} ± 0 (n={len(values)})"
    decimals = min(6, max(0, 1 - math.floor(math.log10(sd))))
    return f"{mean:,.{decimals}f} ± {sd:,.{decimals}f} (n={len(values)})"


def format_value(v: Any) -> str:
    if _is_numbers(v):
        return mean_spread(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return _num(v)
    if isinstance(v, dict):
        return "; ".join(f"{k}: {format_value(x)}" for k, x in v.items())
    return str(v)


def measured_items(measured: dict) -> list[str]:
    """The measured numbers as separate items: the arms with their seed spread first."""
    parts = []
    if "arms" in measured and isinstance(measured["arms"], dict):
        metric = measured.get("metric", "value")
        arms = ", ".join(f"{name} {format_value(vals)}" for name, vals in measured["arms"].items())
        direction = "higher is better" if measured.get("higher_is_better", True) else "lower is better"
        parts.append(f"{metric} ({direction}): {arms}")
    skip = {"arms", "metric", "higher_is_better", "margin"} if "arms" in measured else set()
    parts += [f"{k}: {format_value(v)}" for k, v in measured.items() if k not in skip]
    return parts


def format_measured(measured: dict) -> str:
    """One line a reader can check against the chapter (the overview table's cell)."""
    return "; ".join(measured_items(measured)) if measured else "(nothing measured)"


def effect_in_bars(measured: dict) -> float | None:
    """The treatment-minus-control difference in units of the verdict's bar (max of margin, spread).

    Beyond +1 the claim is reproduced, below -1 it is contradicted, in between inconclusive: the
    same rule :func:`verdict_from_seeds` applies. ``None`` when the record has no two arms.
    """
    arms = measured.get("arms") if isinstance(measured, dict) else None
    if not isinstance(arms, dict) or len(arms) != 2 or not all(_is_numbers(v) for v in arms.values()):
        return None
    t, c = (list(map(float, v)) for v in arms.values())
    sign = 1.0 if measured.get("higher_is_better", True) else -1.0
    diff = sign * (statistics.fmean(t) - statistics.fmean(c))
    spread = max(statistics.pstdev(t) if len(t) > 1 else 0.0, statistics.pstdev(c) if len(c) > 1 else 0.0)
    bar = max(float(measured.get("margin", 0.0)), spread)
    if bar == 0:
        return math.copysign(math.inf, diff) if diff else 0.0
    return diff / bar


def scorecard_rows(claims: dict[int, dict | None] | None = None) -> list[dict]:
    """One row per claim (all 14, in order), recorded or not."""
    claims = load_claims() if claims is None else claims
    rows = []
    for n, meta in CLAIMS.items():
        rec = claims.get(n)
        row = {"claim": n, "chapter": meta["chapter"], "paper": meta["paper"], "statement": meta["claim"]}
        if rec is None:
            row.update(experiment="", measured="", seeds="", verdict=NO_RESULT, effect=None, recorded="", notes="")
        else:
            measured = rec.get("measured", {})
            row.update(experiment=rec.get("experiment", ""), measured=format_measured(measured),
                       measured_items=measured_items(measured) if measured else [],
                       seeds=", ".join(map(str, rec.get("seeds", []))) or "-", verdict=rec.get("verdict", NO_RESULT),
                       effect=effect_in_bars(measured), recorded=rec.get("recorded", ""), notes=rec.get("notes", ""))
        rows.append(row)
    return rows


def missing_claims(claims: dict[int, dict | None] | None = None) -> list[int]:
    claims = load_claims() if claims is None else claims
    return [n for n in CLAIMS if claims.get(n) is None]


def verdict_counts(rows: list[dict]) -> dict[str, int]:
    counts = {v: 0 for v in VERDICT_COLOURS}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    return counts


def _md_text(text: Any) -> str:
    """Keep underscores in metric names from turning into emphasis."""
    return str(text).replace("_", "\\_")


def _cell(text: Any) -> str:
    return _md_text(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict], measured: bool = False) -> str:
    """The overview table: claim, where the paper makes it, the chapter, the verdict.

    ``measured=True`` adds a column with the measured numbers (mean ± sd over seeds); the book
    leaves it out of the overview, which stays readable on a phone, and lists them per claim instead.
    """
    if measured:
        head = "| # | claim | paper · chapter | measured (mean ± sd over seeds) | verdict |\n|---|---|---|---|---|\n"
    else:
        head = "| # | claim | paper · chapter | verdict |\n|---|---|---|---|\n"
    body = "".join(
        f"| {r['claim']} | {_cell(r['statement'])} | {_cell(r['paper'])} · ch. {r['chapter']} | "
        + (f"{_cell(r['measured'] or '-')} | " if measured else "") + f"**{r['verdict']}** |\n" for r in rows)
    return head + body


def claim_markdown(row: dict) -> str:
    """The detailed card of one claim: statement, experiment, numbers, seeds, verdict."""
    # A bold line rather than a heading: this text is a cell output, and headings inside outputs
    # do not belong in the page's table of contents.
    lines = [f"**Claim {row['claim']} — {row['verdict']}**", "",
             f"**The paper** ({row['paper']}, tested in chapter {row['chapter']}): {row['statement']}", ""]
    if row["verdict"] == NO_RESULT:
        lines.append(f"**No result recorded.** Chapter {row['chapter']}'s notebook has not saved a result for this "
                     "claim in the artifact cache (run it, then re-run this page).")
        return "\n".join(lines) + "\n"
    items = row.get("measured_items") or [row["measured"]]
    measured = items[0] if len(items) == 1 else "\n" + "\n".join(f"- {_md_text(i)}" for i in items)
    lines += [f"**Toy experiment.** {row['experiment']}", "", f"**Measured.** {measured}", "",
              f"**Seeds.** {row['seeds']}" + (f" · recorded {row['recorded']}" if row["recorded"] else "")]
    if row["effect"] is not None:
        lines += ["", f"**Effect in units of the verdict bar** (|x| > 1 decides): {_num(row['effect'])}"]
    if row["notes"]:
        lines += ["", f"**Notes.** {row['notes']}"]
    return "\n".join(lines) + "\n"


def summary_figure(rows: list[dict]):
    """Left: each claim's effect in units of its verdict bar, coloured by verdict. Right: counts."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 5.2), gridspec_kw={"width_ratios": [3, 1.2]})
    ys = list(range(len(rows)))[::-1]
    finite = [abs(r["effect"]) for r in rows if r["effect"] is not None and math.isfinite(r["effect"])]
    # Effects beyond +-6 bars are drawn at the edge with their value written out, so that one huge
    # effect does not squash the bars that sit near the thresholds.
    lim = max(3.0, min(6.0, max(finite, default=0.0))) * 1.15
    for y, r in zip(ys, rows):
        colour = VERDICT_COLOURS.get(r["verdict"], "#9e9e9e")
        e = r["effect"]
        if e is None:
            label = NO_RESULT if r["verdict"] == NO_RESULT else f"{r['verdict']} (no two-arm numbers)"
            ax.text(0, y, label, ha="center", va="center", fontsize=8, color=colour, style="italic", zorder=3,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0})
        else:
            shown = max(-lim / 1.15, min(lim / 1.15, e))
            ax.barh(y, shown, color=colour, height=0.6)
            label = ("∞" if e > 0 else "−∞") if not math.isfinite(e) else f"{e:.1f}"
            ax.text(shown, y, f" {label} " if e >= 0 else f" {label} ", va="center",
                    ha="left" if e >= 0 else "right", fontsize=8)
    for x in (-1, 1):
        ax.axvline(x, color="k", lw=0.8, ls="--")
    ax.axvline(0, color="k", lw=0.5)
    ax.set_yticks(ys, [f"claim {r['claim']} (ch. {r['chapter']})" for r in rows], fontsize=8)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("treatment − control, in units of max(margin, seed spread)")
    ax.set_title("Effect size per claim (dashed: verdict thresholds)", fontsize=10)
    counts = verdict_counts(rows)
    names = list(VERDICT_COLOURS)
    ax2.bar(range(len(names)), [counts[n] for n in names], color=[VERDICT_COLOURS[n] for n in names])
    ax2.set_xticks(range(len(names)), [n.replace(" ", "\n") for n in names], fontsize=8)
    ax2.set_ylabel("claims")
    ax2.set_title(f"Verdicts ({len(rows)} claims)", fontsize=10)
    for i, n in enumerate(names):
        ax2.text(i, counts[n], str(counts[n]), ha="center", va="bottom")
    ax2.set_ylim(0, max(counts.values()) + 1.5)
    fig.legend(handles=[Patch(color=VERDICT_COLOURS[n], label=n) for n in names], loc="lower center", ncol=4,
               fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def render(claims: dict[int, dict | None] | None = None) -> str:
    """The whole scorecard as markdown (what ``python -m infir_lib report`` prints)."""
    rows = scorecard_rows(claims)
    counts = verdict_counts(rows)
    summary = ", ".join(f"{counts[v]} {v}" for v in VERDICT_COLOURS)
    return "\n".join([f"# Reproduction scorecard ({summary})", "", markdown_table(rows, measured=True), ""]
                     + [claim_markdown(r) for r in rows])


__all__ = ["NO_RESULT", "VERDICT_COLOURS", "record_comparison", "format_measured", "mean_spread", "effect_in_bars",
           "measured_items", "scorecard_rows", "missing_claims", "verdict_counts", "markdown_table", "claim_markdown",
           "summary_figure", "render", "Verdict"]
