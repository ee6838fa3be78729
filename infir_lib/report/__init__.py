"""The reproduction scorecard (chapter 8): each claim's toy experiment and its measured result.

Chapter notebooks call :func:`record_claim` with the numbers they computed; the scorecard page
reads them back with :func:`load_claims`. Nothing here is typed in by hand: a verdict comes from
:func:`verdict_from_seeds`, which compares the two arms over seeds.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Literal

from ..artifacts import cache_root

Verdict = Literal["reproduced", "not reproduced", "inconclusive"]

# The 14 claims of the book's scorecard (shared/DESIGN.md), with the chapter that tests each.
CLAIMS: dict[int, dict] = {
    1: {"chapter": 2, "paper": "InfiR §2.1.2", "claim": "Filtered pre-training data converges faster / scores higher than raw data."},
    2: {"chapter": 2, "paper": "InfiR §5.1.2", "claim": "Removing text that ends in a colon removes the premature end-of-text after ':'."},
    3: {"chapter": 2, "paper": "InfiR §5.1.2", "claim": "Mixing more domains needs a larger batch to keep the gradient norm stable."},
    4: {"chapter": 2, "paper": "InfiR §5.1.2", "claim": "Synthetic data in pre-training lifts base scores but not post-SFT scores."},
    5: {"chapter": 2, "paper": "InfiR Eq. 4-6", "claim": "An ε-contaminated distribution raises perplexity by at most about (1+ε) yet corrupts generation about every 1/ε tokens."},
    6: {"chapter": 2, "paper": "InfiR Eq. 2", "claim": "Normalized choice probability tracks accuracy more smoothly than accuracy itself."},
    7: {"chapter": 4, "paper": "InfiR §3.1", "claim": "Rejection sampling with a reward model / verifier yields better SFT data than unfiltered samples."},
    8: {"chapter": 4, "paper": "InfiR App. C", "claim": "Sandbox-verified synthetic code beats unverified code for SFT."},
    9: {"chapter": 4, "paper": "InfiR App. B", "claim": "Hard-only data (group B) beats easy-only data (group A) on hard problems; a 35% slice of B nearly matches all of it."},
    10: {"chapter": 4, "paper": "InfiR App. D", "claim": "More long-CoT data helps hard problems."},
    11: {"chapter": 6, "paper": "InfiR App. E", "claim": "Dropping image-text pairs below the similarity threshold helps alignment."},
    12: {"chapter": 6, "paper": "InfiR §4.3, §5.2", "claim": "Curriculum unfreezing (projector, then vision tower, then all) beats end-to-end training."},
    13: {"chapter": 7, "paper": "Infi-MMR", "claim": "Phased RL (text-only, then caption-augmented, then multimodal) beats direct multimodal RL."},
    14: {"chapter": 7, "paper": "Curr-ReFT", "claim": "Difficulty-ordered RL with difficulty-aware rewards generalises better out of domain than mixed-order RL."},
}


def results_dir() -> Path:
    d = cache_root() / "results"
    d.mkdir(parents=True, exist_ok=True)
    return d


def verdict_from_seeds(treatment: list[float], control: list[float], higher_is_better: bool = True,
                       margin: float = 0.0) -> Verdict:
    """Compare two arms measured over the same seeds.

    Reproduced when the treatment's mean is better by more than ``margin`` and by more than the
    larger of the two seed standard deviations; not reproduced when it is worse by that much;
    inconclusive otherwise (including a single seed whose difference is within ``margin``).
    """
    if not treatment or not control:
        raise ValueError("both arms need at least one measurement")
    sign = 1.0 if higher_is_better else -1.0
    diff = sign * (statistics.fmean(treatment) - statistics.fmean(control))
    spread = max(statistics.pstdev(treatment) if len(treatment) > 1 else 0.0,
                 statistics.pstdev(control) if len(control) > 1 else 0.0)
    bar = max(margin, spread) + 1e-9  # a difference equal to the bar is a tie, whatever the float rounding
    if diff > bar:
        return "reproduced"
    if diff < -bar:
        return "not reproduced"
    return "inconclusive"


def _plain(obj):
    """NumPy / torch numbers and arrays as plain JSON numbers and lists (anything else as text)."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def record_claim(claim: int, *, experiment: str, measured: dict, verdict: Verdict, seeds: list[int] | None = None,
                 notes: str = "") -> Path:
    """Save what a notebook measured for a claim (called by the chapter notebooks)."""
    if claim not in CLAIMS:
        raise KeyError(f"unknown claim {claim}; claims are 1..{len(CLAIMS)}")
    if verdict not in ("reproduced", "not reproduced", "inconclusive"):
        raise ValueError(f"verdict must be reproduced / not reproduced / inconclusive, got {verdict!r}")
    meta = CLAIMS[claim]
    rec = {"claim": claim, "chapter": meta["chapter"], "paper": meta["paper"], "statement": meta["claim"],
           "experiment": experiment, "measured": measured, "verdict": verdict,
           "seeds": seeds or [], "notes": notes, "recorded": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path = results_dir() / f"claim_{claim:02d}.json"
    path.write_text(json.dumps(rec, indent=1, default=_plain))
    return path


def load_claims() -> dict[int, dict | None]:
    """Every claim with its recorded result, or ``None`` where no notebook has recorded one yet."""
    out: dict[int, dict | None] = {}
    for claim in CLAIMS:
        path = results_dir() / f"claim_{claim:02d}.json"
        out[claim] = json.loads(path.read_text()) if path.exists() else None
    return out


def cli(argv: list[str] | None = None) -> int:
    """``python -m infir_lib report [--check]``: print the scorecard; ``--check`` fails on a missing claim."""
    import argparse

    from .scorecard import missing_claims, render

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


from .scorecard import record_comparison  # noqa: E402  (needs the names above)
