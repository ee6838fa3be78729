"""The chapter's comparisons: arms x seeds, their curves and mean ± spread tables, and the per-item
outcomes the scorecard's paired comparisons need (thin helpers)."""

from __future__ import annotations

import hashlib
import statistics

from .. import artifacts
from ..book.figures import panels
from ..eval.blind import fixed_answer_accuracy
from ..models import load_model, load_tokenizer
from ..parallel import run_parallel
from ..report.verdicts import level_in_band
from ..vlm.model import load_processor, load_vlm
from . import as_config, run
from .curr_reft import eval_sets
from .policy import evaluate_sets, generate, set_stop_tokens, starting_policy
from .rewards import completion_text, extract_answer, score_answer
from .tasks import format_rows
from .vision import visual_rows

CURVES = (("reward", "reward (accuracy + format)"), ("completions/mean_length", "completion length (tokens)"),
          ("kl", "KL to the reference"), ("frac_reward_zero_std", "share of zero-variance groups"))

# Out-of-domain candidates for Curr-ReFT's claim: (family, steps), each never trained on (see
# :func:`.tasks.make_family`). The chapter measures the starting policy on each and evaluates where it
# sits off the floor and the ceiling (:func:`choose_level`), on items drawn apart from the test items.
OOD_LEVELS = (("counting", 1), ("counting", 2), ("large", 1), ("large", 2), ("new_items", 1), ("new_items", 2),
              ("new_items", 3))
LEVEL_SEED_OFFSET = 7  # the selection items' seed: cfg.eval_seed + this (the test items use cfg.eval_seed)


def run_one(config, overrides: dict | None = None, score: dict[str, int] | None = None):
    """One cached run of ``config`` with ``overrides``; with ``score`` (``{evaluation set: items}``) also
    its per-item outcomes (:func:`item_outcomes`, cached), so they are computed where the run is."""
    result = run(config, overrides)
    for name, n in (score or {}).items():
        item_outcomes(result, config, name, n, overrides=overrides)
    return result


def run_arms(arms: dict[str, str], seeds: list[int], overrides: dict | None = None, *,
             score: dict[str, int] | None = None, workers: int | None = None) -> dict[str, list]:
    """``{arm: config path}`` -> ``{arm: [RLResult per seed]}`` (each run cached by its config).

    The arms x seeds runs are independent and seeded, so they run side by side, one torch thread each
    (:func:`infir_lib.parallel.run_parallel`: one worker per core); a run's result is the same whichever
    worker built it, or the caller itself (``workers=1``). ``score``: evaluation sets whose per-item
    outcomes each worker computes right after its run (``{name: n items}``, see :func:`item_outcomes`).
    """
    calls = [(path, {**(overrides or {}), "seed": s}, score) for path in arms.values() for s in seeds]
    results = run_parallel(run_one, calls, threads=1, workers=workers)
    out, k = {}, 0
    for name in arms:
        out[name] = results[k: k + len(seeds)]
        k += len(seeds)
    return out


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
    import pandas as pd  # heavy: pandas, only for the tables

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
    import matplotlib.pyplot as plt  # heavy: matplotlib, only for the figures

    fig, axes = panels(len(CURVES), panel=(3.5, 2.8))
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
    axes[0].legend()
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


# --- per-item outcomes (the scorecard compares arms item by item) ----------------------------------
def eval_rows(cfg, name: str) -> list[dict]:
    """The held-out rows of evaluation set ``name``: ``id_<format>`` / ``ood_open`` (Curr-ReFT's text
    task) or ``vmath_image`` / ``vmath_caption`` (Infi-MMR's visual math), ``cfg.eval_n`` of them."""
    if name.startswith("vmath_"):
        return visual_rows(name.split("_", 1)[1], cfg.eval_n, cfg.eval_seed)
    sets = eval_sets(cfg)
    if name not in sets:
        raise KeyError(f"unknown evaluation set {name!r}; sets: {sorted(sets) + ['vmath_caption', 'vmath_image']}")
    return sets[name]


def _row_key_digest(rows: list[dict]) -> str:
    """One digest of the items' keys, so a cached outcome list belongs to exactly these items."""
    return hashlib.sha1("".join(_row_key(r) for r in rows).encode()).hexdigest()[:16]


def _row_key(row: dict) -> str:
    """What identifies an item across arms: its prompt text and its answer."""
    content = row["prompt"][0]["content"]
    text = content if isinstance(content, str) else " ".join(c.get("text", "") for c in content)
    return hashlib.sha1(f"{text}\x00{row['solution']}".encode()).hexdigest()[:12]


def item_outcomes(result, config, name: str, n: int | None = None, overrides: dict | None = None) -> dict:
    """Greedy 0/1 outcome per held-out item of the saved policy of ``result`` (the row's own checker,
    as in the run's summary), on ``n`` items (default: the config's ``eval_n``) of the set ``name`` as
    ``config`` with ``overrides`` defines it (e.g. ``ood_family``/``ood_steps``/``eval_seed``). Cached,
    so a second execution reads it back. Returns ``{"correct": [...], "keys": [...]}`` in item order."""
    summary = result.summary
    cfg = as_config(config, {**(overrides or {}), "seed": summary["seed"], **({"eval_n": int(n)} if n else {})})
    if cfg.method != summary["method"]:
        raise ValueError(f"{config}: method {cfg.method!r}, but the run was {summary['method']!r}")
    rows = eval_rows(cfg, name)
    spec = {"run": result.output_dir.name, "set": name, "n": len(rows), "eval_seed": cfg.eval_seed,
            "max_new_tokens": cfg.eval_max_new_tokens, "items": _row_key_digest(rows)}

    def build(folder) -> None:
        model_dir = result.output_dir / "model"
        tok, processor = load_tokenizer(model_dir), None
        if "image" in rows[0]:
            model, processor = load_vlm(model_dir), load_processor(model_dir)
        else:
            model = load_model(model_dir)
            set_stop_tokens(model, tok)
        images = [r["image"] for r in rows] if processor is not None else None
        texts = generate(model, tok, [r["prompt"] for r in rows], cfg.eval_max_new_tokens, batch=100, images=images,
                         processor=processor)  # wide batches: a tiny policy decodes 100 rows about as fast as 32
        correct = [float(score_answer(extract_answer(completion_text(t)), r["solution"], r["answer_type"]))
                   for t, r in zip(texts, rows)]
        artifacts.save_json({"correct": correct, "keys": [_row_key(r) for r in rows]}, folder / "items.json")

    folder = artifacts.cached("rl-items", spec, build, name=name)
    return artifacts.load_json(folder / "items.json")


def item_matrix(results: dict[str, list], configs: dict[str, str], name: str, n: int | None = None,
                overrides: dict | None = None) -> dict[str, list[list[float]]]:
    """``{arm: seeds × items}`` outcomes on evaluation set ``name``; rows in the runs' seed order, and
    every arm checked to have been scored on the same items in the same order (the comparison pairs them)."""
    out, keys = {}, None
    for arm, rs in results.items():
        rows = []
        for r in rs:
            res = item_outcomes(r, configs[arm], name, n, overrides=overrides)
            if keys is None:
                keys = res["keys"]
            elif res["keys"] != keys:
                raise ValueError(f"arm {arm!r} (seed {r.summary['seed']}) was scored on other items of {name!r} "
                                 "than the first arm: the configs' eval_seed / eval_n differ")
            rows.append(res["correct"])
        out[arm] = rows
    return out


def fixed_answer_baseline(rows: list[dict]) -> float:
    """The best accuracy without the image: for each distinct question text, always the answer that is
    most common among the items asking it (an upper bound for an answerer that cannot see)."""
    if not rows:
        raise ValueError("fixed_answer_baseline: no rows")

    def question(r):
        content = r["prompt"][0]["content"]
        return content if isinstance(content, str) else " ".join(c.get("text", "") for c in content)

    return fixed_answer_accuracy((question(r), str(r["solution"]).strip()) for r in rows)


# --- choosing the out-of-domain level, and the zero-variance mechanism -----------------------------
def level_curve(config, levels=OOD_LEVELS, n: int = 80, overrides: dict | None = None) -> list[dict]:
    """Greedy accuracy of the starting policy of ``config`` (the cold start both arms begin from) on
    ``n`` items of each out-of-domain ``(family, steps)`` level, drawn with the selection seed
    (``eval_seed + LEVEL_SEED_OFFSET``, apart from the test items). Cached. One dict per level."""
    cfg = as_config(config, overrides)
    start, start_spec = starting_policy(cfg)
    seed = cfg.eval_seed + LEVEL_SEED_OFFSET
    levels = [(str(f), int(k)) for f, k in levels]
    spec = {"start": start_spec, "levels": levels, "n": n, "seed": seed, "max_new_tokens": cfg.eval_max_new_tokens}

    def build(folder) -> None:
        model, tok = load_model(start), load_tokenizer(start)
        set_stop_tokens(model, tok)
        sets = {f"{f}-{k}": format_rows(f, "open", n, seed=seed, steps=[k]) for f, k in levels}
        scores = evaluate_sets(model, tok, sets, cfg.eval_max_new_tokens)
        artifacts.save_json([{"family": f, "steps": k, "accuracy": scores[f"{f}-{k}"]["accuracy"],
                              "format": scores[f"{f}-{k}"]["format"], "n": n} for f, k in levels],
                            folder / "curve.json")

    folder = artifacts.cached("rl-items", spec, build, name="ood-levels")
    return artifacts.load_json(folder / "curve.json")


def choose_level(curve: list[dict], lo: float = 0.15, hi: float = 0.85) -> dict | None:
    """The level whose accuracy lies in ``[lo, hi]`` and is nearest 0.5 (where paired arms can differ
    most); the first such level on ties, ``None`` when every level is at the floor or the ceiling."""
    i = level_in_band([c["accuracy"] for c in curve], lo, hi, ties="first")
    return curve[i] if i is not None else None


def zero_variance_table(results: dict[str, list], generations: dict[str, list[int]] | None = None):
    """Per arm and stage (in schedule order), the share of prompt groups whose rewards were all equal
    (mean ± population std over seeds, from each run's summary). ``generations``: ``{arm: G per stage}``
    for a column that names the group size."""
    import pandas as pd  # heavy: pandas, only for the tables

    rows = []
    for arm, rs in results.items():
        names = list(rs[0].summary["zero_variance"])
        for i, stage in enumerate(names):
            m, s = mean_std([r.summary["zero_variance"][stage] for r in rs])
            row = {"arm": arm, "stage": f"{i + 1}: {stage}"}
            if generations:
                row["G"] = generations[arm][i]
            row["zero-variance share"] = f"{m:.2f} ± {s:.2f}"
            row["mean"] = m
            rows.append(row)
    return pd.DataFrame(rows)


def plot_zero_variance(results: dict[str, list], title: str):
    """Bars: per stage, each arm's share of zero-variance groups (mean over seeds; dots = seeds)."""
    import matplotlib.pyplot as plt  # heavy: matplotlib, only for the figures

    arms = list(results)
    n_stages = len(next(iter(results.values()))[0].summary["zero_variance"])
    width = 0.8 / len(arms)
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for a, arm in enumerate(arms):
        names = list(results[arm][0].summary["zero_variance"])
        per_seed = [[r.summary["zero_variance"][st] for st in names] for r in results[arm]]
        xs = [i + (a - (len(arms) - 1) / 2) * width for i in range(n_stages)]
        ax.bar(xs, [statistics.fmean(v[i] for v in per_seed) for i in range(n_stages)], width,
               color=colours[a % len(colours)], alpha=0.8, label=arm)
        for v in per_seed:
            ax.scatter(xs, v, color="black", s=8, zorder=3)
        for x, st in zip(xs, names):
            ax.text(x, -0.02, st, rotation=90, ha="center", va="top", fontsize=7)
    ax.set_xticks(range(n_stages))
    ax.set_xticklabels([f"stage {i + 1}" for i in range(n_stages)])
    ax.tick_params(axis="x", pad=42)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of groups, all G rewards equal")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return fig
