"""The reproduction scorecard (chapter 8): each claim's toy experiment and its measured result.

Each claim declares, here and before any chapter runs, the comparison(s) that test it: the metric,
the kind of statement (the treatment is better / the arms do not differ / nearly as good), the
margin — the smallest difference that matters — and why. A chapter measures both arms per seed and
per item and calls :func:`compare` with the numbers; the margin and kind come from this table, not
from the notebook. :func:`record_experiment` combines the parts into the claim's verdict
(:mod:`infir_lib.report.verdicts`), and the scorecard page reads the records back.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Sequence

from ..artifacts import cache_root
from .verdicts import VERDICTS, Comparison, Gate, Verdict, combine_all, gate_above, gate_between, gate_off_floor  # noqa: F401
from .verdicts import Interval
from .verdicts import compare as _compare


def _part(metric: str, margin: float, reason: str, *, kind: str = "superiority", outcome: str = "binary",
          higher_is_better: bool = True, noise_sd: float = 1.0, n_seeds: int | None = None,
          n_items: int | None = None) -> dict:
    """A declared comparison. ``outcome`` says how items are scored (binary 0/1, continuous, or one
    number per seed); ``noise_sd`` is the planning guess of a continuous metric's per-item spread,
    used only by the calibration simulation; ``n_seeds`` × ``n_items`` is the design the chapter
    runs (the calibration tests simulate exactly that, and :func:`record_experiment` holds the
    chapter to it)."""
    return {"metric": metric, "margin": margin, "reason": reason, "kind": kind, "outcome": outcome,
            "higher_is_better": higher_is_better, "noise_sd": noise_sd, "n_seeds": n_seeds, "n_items": n_items}


ACC5 = ("5 accuracy points: the smaller gaps in the papers' ablations are a few points, and a toy "
        "difference below five points would not change which recipe a reader picks")

# The 14 claims of the book's scorecard, with the chapter that tests each and their declared parts.
CLAIMS: dict[int, dict] = {
    1: {"chapter": 2, "paper": "InfiR §2.1.2", "claim": "Filtered pre-training data converges faster / scores higher than raw data.",
        "parts": {"held-out NLL": _part("NLL per token of each held-out document (nats)", 0.02,
                                        "0.02 nats is a 2% change in perplexity, about the gain the paper's "
                                        "filtering ablations act on", outcome="continuous",
                                        higher_is_better=False, noise_sd=0.3, n_seeds=3, n_items=400),
                  "converges faster": _part("steps to reach the raw arm's final held-out loss, as a share of the "
                                            "run's steps (per seed)", 0.1,
                                            "a tenth of the steps: a smaller saving would not change a training "
                                            "budget", outcome="seed", higher_is_better=False, noise_sd=0.1,
                                            n_seeds=3, n_items=1)}},
    2: {"chapter": 2, "paper": "InfiR §5.1.2", "claim": "Removing text that ends in a colon removes the premature end-of-text after ':'.",
        "parts": {"P(eos | ':')": _part("probability of end-of-text right after a lead-in ending in ':' (per prompt)",
                                        0.02, "a 2-point drop in the chance of stopping is the smallest change "
                                        "that shows in a few dozen generations", outcome="continuous",
                                        higher_is_better=False, noise_sd=0.05, n_seeds=3, n_items=400)}},
    3: {"chapter": 2, "paper": "InfiR §5.1.2", "claim": "Mixing more domains needs a larger batch to keep the gradient norm stable.",
        "parts": {"wide mix is spikier": _part("share of post-warm-up training steps whose gradient norm was clipped "
                                               "or spiked (per seed)", 0.05,
                                               "5% of the steps, the smallest change in how often clipping "
                                               "intervenes that a training log would show", outcome="seed",
                                               higher_is_better=False, noise_sd=0.05, n_seeds=3, n_items=1),
                  "larger batch calms it": _part("share of post-warm-up training steps whose gradient norm was clipped "
                                                 "or spiked (per seed)", 0.05,
                                                 "as above", outcome="seed", higher_is_better=False, noise_sd=0.05, n_seeds=3, n_items=1)}},
    4: {"chapter": 2, "paper": "InfiR §5.1.2", "claim": "Synthetic data in pre-training lifts base scores but not post-SFT scores.",
        "parts": {"base lift": _part("few-shot exact-answer accuracy of the annealed base (per item)", 0.05, ACC5, n_seeds=3, n_items=200),
                  "no lift after SFT": _part("exact-answer accuracy after SFT (per item)", 0.05, ACC5,
                                             kind="equivalence", n_seeds=3, n_items=200)}},
    5: {"chapter": 2, "paper": "InfiR Eq. 4-6", "claim": "An ε-contaminated distribution raises perplexity by at most about (1+ε) yet corrupts generation about every 1/ε tokens.",
        "parts": {"perplexity within the bound": _part("max over ε of ppl_q / ppl_p − 1/(1−ε) (≤ 0 holds)", 0.0,
                                                       "a bound: any excess is a violation", kind="equivalence",
                                                       outcome="check"),
                  "generation hurt": _part("code-completion accuracy, clean minus ε = 0.05 decoding (per item)",
                                           0.05, ACC5, n_seeds=3, n_items=400)}},
    6: {"chapter": 2, "paper": "InfiR Eq. 2", "claim": "Normalized choice probability tracks accuracy more smoothly than accuracy itself.",
        "parts": {"smoother": _part("Spearman correlation of the metric with the training step (per run)", 0.1,
                                    "0.1 of rank correlation: smaller differences are invisible on a plot of a "
                                    "dozen checkpoints", outcome="seed", noise_sd=0.15, n_seeds=6, n_items=1)}},
    7: {"chapter": 4, "paper": "InfiR §3.1", "claim": "Rejection sampling with a reward model / verifier yields better SFT data than unfiltered samples.",
        "parts": {"test accuracy": _part("exact-answer accuracy on held-out problems at the level where the control "
                                         "(unfiltered) arm's measured curve is nearest 50% (per item)", 0.05, ACC5,
                                         n_seeds=3, n_items=200)}},
    8: {"chapter": 4, "paper": "InfiR App. C", "claim": "Sandbox-verified synthetic code beats unverified code for SFT.",
        "parts": {"pass rate": _part("all unit tests passed, per held-out task (0/1); compile rate and share of "
                                     "tests passed are reported beside it", 0.05, ACC5, n_seeds=3, n_items=60)}},
    9: {"chapter": 4, "paper": "InfiR App. B", "claim": "Hard-only data (group B) beats easy-only data (group A) on hard problems; a 35% slice of B nearly matches all of it.",
        "parts": {"B beats A on hard": _part("exact-answer accuracy on multi-step problems at the level where group "
                                             "A's curve is nearest 50% (per item); A cut to B's size, so equal steps "
                                             "and equal epochs", 0.05, ACC5, n_seeds=3, n_items=200),
                  "35% of B nearly matches B": _part("exact-answer accuracy on multi-step problems at the level where "
                                                     "group B's curve is nearest 50% (per item)", 0.05,
                                                     ACC5 + "; 'nearly matches' = loses less than that. Decided at "
                                                     "equal epochs (the slice trains on 35% of B's steps), chosen "
                                                     "before any run: the paper's question is whether a third of "
                                                     "the data does the job with the same recipe; at equal steps "
                                                     "the slice is only repeated three times as often (shown, "
                                                     "one seed, not deciding)",
                                                     kind="noninferiority", n_seeds=3, n_items=200)}},
    10: {"chapter": 4, "paper": "InfiR App. D", "claim": "More long-CoT data helps hard problems.",
         "parts": {"hard accuracy": _part("exact-answer accuracy on hard (3-5 step) problems at the level where the "
                                          "10% arm's pilot curve is nearest 50% (per item)", 0.05,
                                          ACC5 + ". Both arms trained to a loss plateau (epochs fixed from the slower "
                                          "arm's loss curve, checked per run); decided at equal epochs (10% of the "
                                          "data = 10% of the steps, as the paper's 200K vs 2M), chosen before any "
                                          "run; equal steps shown, one seed, not deciding; seed-0 pilots of both "
                                          "arms gate the other runs", n_seeds=3, n_items=200)}},
    11: {"chapter": 6, "paper": "InfiR App. E", "claim": "Dropping image-text pairs below the similarity threshold helps alignment.",
         "parts": {"image use": _part("image-use gap per held-out caption: its loss with a shuffled image minus with "
                                      "its own image (nats/token)", 0.02,
                                      "0.02 nats per token, a 2% change in caption perplexity",
                                      outcome="continuous", higher_is_better=True, noise_sd=0.3, n_seeds=3, n_items=400)}},
    12: {"chapter": 6, "paper": "InfiR §4.3, §5.2", "claim": "Curriculum unfreezing (projector, then vision tower, then all) beats end-to-end training.",
         "parts": {"accuracy": _part("exact-answer accuracy on held-out visual questions (per item)", 0.05, ACC5, n_seeds=2, n_items=300)}},
    13: {"chapter": 7, "paper": "Infi-MMR", "claim": "Phased RL (text-only, then caption-augmented, then multimodal) beats direct multimodal RL.",
         "parts": {"visual-math accuracy": _part("exact-answer accuracy on held-out visual-math items (per item)",
                                                 0.05, ACC5, n_seeds=2, n_items=200)}},
    14: {"chapter": 7, "paper": "Curr-ReFT", "claim": "Difficulty-ordered RL with difficulty-aware rewards generalises better out of domain than mixed-order RL.",
         "parts": {"out-of-domain accuracy": _part("exact-answer accuracy on out-of-domain items (per item)", 0.05,
                                                   ACC5, n_seeds=3, n_items=200)}},
}


def compare(claim: int, part: str, treatment, control, *, labels: tuple[str, str] = ("treatment", "control"),
            gates: Sequence[Gate] = (), paired_items: bool = True) -> Comparison:
    """One declared part of a claim, measured: ``treatment``/``control`` are seeds × items (or one value
    per seed). Margin, kind and direction come from :data:`CLAIMS`, never from the caller."""
    if claim not in CLAIMS:
        raise KeyError(f"unknown claim {claim}; claims are 1..{len(CLAIMS)}")
    parts = CLAIMS[claim]["parts"]
    if part not in parts:
        raise KeyError(f"claim {claim} declares the parts {sorted(parts)}, not {part!r}")
    d = parts[part]
    return _compare(treatment, control, metric=d["metric"], margin=d["margin"], margin_reason=d["reason"],
                    name=part, labels=labels, kind=d["kind"], higher_is_better=d["higher_is_better"],
                    paired_items=paired_items, gates=gates)


def check_part(claim: int, part: str, value: float, *, detail: str) -> Comparison:
    """A declared part that is a deterministic check (``outcome='check'``): holds when ``value`` <= margin."""
    d = CLAIMS[claim]["parts"][part]
    if d["outcome"] != "check":
        raise ValueError(f"claim {claim} part {part!r} is a comparison, not a check: use compare()")
    c = _compare([[0.0]], [[0.0]], metric=d["metric"], margin=d["margin"], margin_reason=d["reason"], name=part,
                 kind="equivalence")
    c.rule_verdict = c.verdict = "reproduced" if value <= d["margin"] else "opposite"
    c.arm_means = {"value": float(value)}
    c.gates = [Gate("check", True, detail)]
    return c


def not_run_part(claim: int, part: str, gates: Sequence[Gate], *,
                 labels: tuple[str, str] = ("treatment", "control")) -> Comparison:
    """A declared part whose arms are not trained because a gate of their starting point failed (e.g. a model
    that cannot see its image, before spending minutes of RL on it): untestable at toy scale, with the gate's
    numbers and no interval. At least one gate must have failed."""
    d = CLAIMS[claim]["parts"][part]
    gates = list(gates)
    if not gates or all(g.passed for g in gates):
        raise ValueError(f"claim {claim} part {part!r}: not running an experiment needs a failed gate; "
                         "measure it with compare() instead")
    nan = float("nan")
    iv = Interval(nan, nan, nan, nan, nan, 0.0, 0.0, 0, 0, True, 0.95)
    return Comparison(name=part, metric=d["metric"], labels=tuple(labels), higher_is_better=d["higher_is_better"],
                      kind=d["kind"], margin=d["margin"], margin_reason=d["reason"], interval=iv, arm_means={},
                      gates=gates, rule_verdict="not run", verdict="untestable at toy scale")


def results_dir() -> Path:
    d = cache_root() / "results"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _plain(obj):
    """NumPy / torch numbers and arrays as plain JSON numbers and lists (anything else as text)."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def record_experiment(claim: int, *, experiment: str, parts: Sequence[Comparison], seeds: list[int] | None = None,
                      notes: str = "", extra: dict | None = None) -> Path:
    """Save a claim's measured parts and the verdict they give together (called by the chapters).

    The verdict is :func:`~infir_lib.report.verdicts.combine_all` of the parts; the card's note is
    built from the numbers (plus ``notes`` when a chapter adds context).
    """
    if claim not in CLAIMS:
        raise KeyError(f"unknown claim {claim}; claims are 1..{len(CLAIMS)}")
    declared = CLAIMS[claim]["parts"]
    names = [p.name for p in parts]
    if sorted(names) != sorted(declared):
        raise ValueError(f"claim {claim} declares the parts {sorted(declared)}; got {names}")
    for p in parts:
        d = declared[p.name]
        if d["outcome"] == "check" or p.not_run:  # not_run_part has checked that a gate failed
            continue
        want = (d["n_seeds"], 1 if d["outcome"] == "seed" else d["n_items"])
        got = (p.interval.n_seeds, p.interval.n_items)
        if None not in want and got != want:
            raise ValueError(f"claim {claim} part {p.name!r}: declared {want[0]} seeds × {want[1]} items, measured "
                             f"{got[0]} × {got[1]} (change the declaration in infir_lib.report.CLAIMS, which the "
                             "calibration tests simulate, or the chapter)")
    verdict = combine_all(parts)
    meta = CLAIMS[claim]
    rec = {"claim": claim, "chapter": meta["chapter"], "paper": meta["paper"], "statement": meta["claim"],
           "experiment": experiment, "parts": [p.to_dict() for p in parts], "measured": extra or {},
           "verdict": verdict, "seeds": seeds or [], "notes": notes,
           "recorded": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path = results_dir() / f"claim_{claim:02d}.json"
    path.write_text(json.dumps(rec, indent=1, default=_plain))
    return path


def load_claims() -> dict[int, dict | None]:
    """Every claim with its recorded result, or ``None`` where no notebook has recorded one yet."""
    out: dict[int, dict | None] = {}
    for claim in CLAIMS:
        path = results_dir() / f"claim_{claim:02d}.json"
        rec = json.loads(path.read_text()) if path.exists() else None
        if rec is not None and "parts" not in rec:
            rec = None  # written by the old rule (before per-item comparisons): not a result any more
        out[claim] = rec
    return out


def claim_parts(rec: dict) -> list[Comparison]:
    """The recorded parts of a claim as :class:`Comparison` objects."""
    return [Comparison.from_dict(p) for p in rec.get("parts", [])]



def __getattr__(name: str):
    """``report.scorecard`` / ``report.verdicts`` without importing them first, and ``report.cli`` (the
    command line, :func:`infir_lib.report.scorecard.cli`): the scorecard imports this module, not the reverse."""
    if name in ("scorecard", "verdicts", "cli"):
        module = importlib.import_module(f".{'scorecard' if name == 'cli' else name}", __name__)
        return module.cli if name == "cli" else module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
