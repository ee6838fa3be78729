"""Render the reproduction scorecard from the results the chapter notebooks recorded.

Nothing in the scorecard is typed in: each row is read from the JSON a notebook wrote with
:func:`infir_lib.report.record_experiment`, and a claim nobody recorded is shown as "no result
recorded" rather than left out. Every card shows each part's interval against its declared margin,
the seeds and items behind it, the smallest effect the design could detect, and the gates.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from ..book.figures import FIGURE_MAX_WIDTH_IN
from . import CLAIMS, claim_parts, load_claims
from .verdicts import VERDICTS, Comparison

NO_RESULT = "no result recorded"
VERDICT_COLOURS = {"reproduced": "#2e7d32", "opposite": "#c62828", "no effect at toy scale": "#1565c0",
                   "inconclusive": "#f9a825", "untestable at toy scale": "#6d4c41", NO_RESULT: "#9e9e9e"}
assert set(VERDICT_COLOURS) == set(VERDICTS) | {NO_RESULT}


def _num(x: float) -> str:
    if isinstance(x, bool):
        return str(x)
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) >= 0.01 else f"{x:.2e}"


def format_value(v: Any) -> str:
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, (int, float)) for x in v):
        return ", ".join(_num(float(x)) for x in v)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return _num(v)
    if isinstance(v, dict):
        return "; ".join(f"{k}: {format_value(x)}" for k, x in v.items())
    return str(v)


def part_summary(p: Comparison) -> str:
    """One line per part: arm means, interval, margin, n, verdict."""
    iv = p.interval
    means = ", ".join(f"{k} {_num(v)}" for k, v in p.arm_means.items())
    if p.gates and p.gates[0].name == "check":
        return f"{p.name}: {p.metric} = {_num(next(iter(p.arm_means.values())))} → {p.rule_verdict}"
    if p.not_run:
        return f"{p.name}: not run at the declared design (a gate failed first) → {p.verdict}"
    return (f"{p.name}: {means}; difference {iv.diff:+.3g} [{iv.lo:+.3g}, {iv.hi:+.3g}] vs margin ±{p.margin:g} "
            f"({iv.n_seeds}×{iv.n_items}) → {p.verdict}")


def format_measured(rec: dict) -> str:
    """The measured parts of a record in one line (the overview table's cell)."""
    parts = claim_parts(rec)
    return "; ".join(part_summary(p) for p in parts) if parts else "(nothing measured)"


def scorecard_rows(claims: dict[int, dict | None] | None = None) -> list[dict]:
    """One row per claim (all 14, in order), recorded or not."""
    claims = load_claims() if claims is None else claims
    rows = []
    for n, meta in CLAIMS.items():
        rec = claims.get(n)
        row = {"claim": n, "chapter": meta["chapter"], "paper": meta["paper"], "statement": meta["claim"]}
        if rec is None:
            row.update(experiment="", parts=[], seeds="", verdict=NO_RESULT, recorded="", notes="", extra={})
        else:
            row.update(experiment=rec.get("experiment", ""), parts=claim_parts(rec),
                       seeds=", ".join(map(str, rec.get("seeds", []))) or "-", verdict=rec["verdict"],
                       recorded=rec.get("recorded", ""), notes=rec.get("notes", ""), extra=rec.get("measured", {}))
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


def markdown_table(rows: list[dict]) -> str:
    """The overview table: claim, where the paper makes it, the chapter, n, the verdict."""
    head = "| # | claim | paper · chapter | seeds × items | verdict |\n|---|---|---|---|---|\n"
    body = []
    for r in rows:
        n = "; ".join("not run" if p.not_run else f"{p.interval.n_seeds}×{p.interval.n_items}" for p in r["parts"]
                      if not (p.gates and p.gates[0].name == "check")) or "-"
        body.append(f"| {r['claim']} | {_cell(r['statement'])} | {_cell(r['paper'])} · ch. {r['chapter']} | {n} | "
                    f"**{r['verdict']}** |\n")
    return head + "".join(body)


def claim_markdown(row: dict) -> str:
    """The detailed card of one claim: statement, experiment, each part's interval and gates, verdict."""
    # A bold line rather than a heading: this text is a cell output, and headings inside outputs
    # do not belong in the page's table of contents.
    lines = [f"**Claim {row['claim']} — {row['verdict']}**", "",
             f"**The paper** ({row['paper']}, tested in chapter {row['chapter']}): {row['statement']}", ""]
    if row["verdict"] == NO_RESULT:
        lines.append(f"**No result recorded.** Chapter {row['chapter']}'s notebook has not saved a result for this "
                     "claim in the artifact cache (run it, then re-run this page).")
        return "\n".join(lines) + "\n"
    lines += [f"**Toy experiment.** {_md_text(row['experiment'])}", ""]
    for p in row["parts"]:
        if p.gates and p.gates[0].name == "check":
            lines.append(f"- *{_md_text(p.name)}* (a check): {_md_text(p.gates[0].detail)} → **{p.rule_verdict}**")
            continue
        lines.append(f"- *{_md_text(p.name)}* ({p.kind}; margin ±{p.margin:g}: {_md_text(p.margin_reason)}). "
                     f"{_md_text(p.sentence())}.")
        for g in p.gates:
            lines.append(f"  - gate *{_md_text(g.name)}*: {'passed' if g.passed else '**failed**'} — {_md_text(g.detail)}")
    if row["extra"]:
        lines += ["", f"**Also measured.** {_md_text(format_value(row['extra']))}"]
    lines += ["", f"**Seeds.** {row['seeds']}" + (f" · recorded {row['recorded']}" if row["recorded"] else "")]
    if row["notes"]:
        lines += ["", f"**Notes.** {_md_text(row['notes'])}"]
    return "\n".join(lines) + "\n"


def interval_rows(rows: list[dict]) -> list[dict]:
    """Every measured comparison, scaled by its margin (so all claims share one axis)."""
    out = []
    for r in rows:
        if not r["parts"]:
            out.append({"label": f"claim {r['claim']}", "verdict": r["verdict"], "scaled": None, "gated": False})
            continue
        for p in r["parts"]:
            label = f"{r['claim']}: {p.name}"
            gated = any(not g.passed for g in p.gates)
            if p.gates and p.gates[0].name == "check":
                out.append({"label": label, "verdict": p.verdict, "scaled": None, "gated": False, "check": True})
                continue
            if p.not_run:
                out.append({"label": label, "verdict": p.verdict, "scaled": None, "gated": True, "not_run": True})
                continue
            iv, m = p.interval, p.margin
            scale = m if m > 0 else 1.0
            out.append({"label": label, "verdict": p.verdict, "kind": p.kind, "gated": gated,
                        "scaled": (iv.diff / scale, iv.lo / scale, iv.hi / scale)})
    return out


def summary_figure(rows: list[dict]):
    """Left: each part's interval in units of its margin, coloured by verdict. Right: verdict counts."""
    import matplotlib.pyplot as plt

    items = interval_rows(rows)
    top = 0.34 * len(items) + 1.3  # one row per part; the verdict counts sit below (the book's width)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(FIGURE_MAX_WIDTH_IN, top + 2.6),
                                  gridspec_kw={"height_ratios": [top, 2.0]})
    ys = list(range(len(items)))[::-1]
    lim = 6.0
    for y, it in zip(ys, items):
        colour = VERDICT_COLOURS.get(it["verdict"], "#9e9e9e")
        if it["scaled"] is None:
            text = ("check: " + it["verdict"]) if it.get("check") else \
                ("not run: a gate failed" if it.get("not_run") else it["verdict"])
            ax.text(0, y, text, ha="center", va="center", fontsize=9, color=colour, style="italic",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0})
            continue
        d, lo, hi = it["scaled"]
        clo, chi = max(-lim, lo), min(lim, hi)
        ax.plot([clo, chi], [y, y], color=colour, lw=2.5, solid_capstyle="butt")
        ax.plot([max(-lim, min(lim, d))], [y], "o", color=colour, ms=5, mfc="white" if it["gated"] else colour)
        for end, cut in ((lo, -lim), (hi, lim)):
            if (end < cut) if cut < 0 else (end > cut):
                ax.annotate("", xy=(cut, y), xytext=(cut * 0.93, y),
                            arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.2})
    for x in (-1, 1):
        ax.axvline(x, color="k", lw=0.8, ls="--")
    ax.axvline(0, color="k", lw=0.5)
    ax.set_yticks(ys, [it["label"] for it in items], fontsize=9)
    ax.set_xlim(-lim * 1.05, lim * 1.05)
    ax.set_ylim(-0.7, len(items) - 0.3)
    ax.set_xlabel("treatment − control, in margins (+ = as the paper says)")
    ax.set_title("95% interval of each comparison\n(dashed: ±margin; open dot: a gate failed)", fontsize=10)
    counts = verdict_counts(rows)
    names = list(VERDICT_COLOURS)
    ax2.barh(range(len(names))[::-1], [counts[n] for n in names], color=[VERDICT_COLOURS[n] for n in names])
    ax2.set_yticks(range(len(names))[::-1], names, fontsize=9)
    ax2.set_xlabel("claims")
    ax2.set_title(f"Verdicts ({len(rows)} claims)", fontsize=10)
    for i, n in zip(range(len(names))[::-1], names):
        ax2.text(counts[n] + 0.1, i, str(counts[n]), va="center", fontsize=9)
    ax2.set_xlim(0, max(counts.values()) + 1.5)
    fig.tight_layout()
    return fig


def render(claims: dict[int, dict | None] | None = None) -> str:
    """The whole scorecard as markdown (what ``python -m infir_lib report`` prints)."""
    rows = scorecard_rows(claims)
    counts = verdict_counts(rows)
    summary = ", ".join(f"{counts[v]} {v}" for v in VERDICT_COLOURS if counts[v])
    return "\n".join([f"# Reproduction scorecard ({summary})", "", markdown_table(rows), ""]
                     + [claim_markdown(r) for r in rows])


__all__ = ["NO_RESULT", "VERDICT_COLOURS", "format_measured", "part_summary", "scorecard_rows", "missing_claims",
           "verdict_counts", "markdown_table", "claim_markdown", "interval_rows", "summary_figure", "render"]


def cli(argv: list[str] | None = None) -> int:
    """``python -m infir_lib report [--check]``: print the scorecard; ``--check`` fails on a missing claim."""
    parser = argparse.ArgumentParser(prog="python -m infir_lib report",
                                     description="Print the reproduction scorecard from the recorded results.")
    parser.add_argument("--check", action="store_true", help="exit 1 if any claim has no recorded result")
    args = parser.parse_args(argv)
    claims = load_claims()
    print(render(claims))
    missing = missing_claims(claims)
    if args.check and missing:
        print(f"claims with no recorded result: {missing}", file=sys.stderr)
        return 1
    return 0
