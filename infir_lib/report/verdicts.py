"""Deciding a claim: a paired interval on treatment − control, held against a declared margin.

The scorecard's earlier rule (the gap of the arm means against the larger seed spread) ignored item
noise, was unpaired, and decided about 40% of experiments that had no true effect at two seeds. This
module replaces it with the textbook construction:

* every arm is measured per **seed** and per **item** (0/1 correctness, a per-document loss, ...);
* both arms share seeds and, usually, items, so the analysis works on the paired differences
  ``D[s, i] = treatment[s, i] − control[s, i]`` (signed so that positive means "as the paper says");
* the standard error of the mean difference adds a seed term (how much the per-seed means move) and
  an item term (how much the per-item means move), and the interval uses Student's t with
  Welch–Satterthwaite degrees of freedom — so two or three seeds give the wide interval they deserve;
* the interval is compared with a **margin** declared before the experiment ran (the smallest
  difference that would matter) and gives one of five verdicts.

Whether the rule is honest is checked by simulation (:func:`simulate`), at the seed and item counts the
chapters use, in ``tests/test_report_verdicts.py`` and on the scorecard page.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal, Sequence

import numpy as np
from scipy import stats

Verdict = Literal["reproduced", "opposite", "no effect at toy scale", "inconclusive", "untestable at toy scale"]
VERDICTS: tuple[str, ...] = ("reproduced", "opposite", "no effect at toy scale", "inconclusive",
                             "untestable at toy scale")
Kind = Literal["superiority", "equivalence", "noninferiority"]
KINDS: tuple[str, ...] = ("superiority", "equivalence", "noninferiority")


@dataclass(frozen=True)
class Gate:
    """A precondition of the experiment (arms off the floor, above a blind baseline, a competent base)."""

    name: str
    passed: bool
    detail: str  # the measured numbers, in words, shown on the claim's card


def gate_between(name: str, scores: dict[str, float], floor: float, ceiling: float) -> Gate:
    """Every arm scores strictly between ``floor`` and ``ceiling`` (else the arms cannot differ)."""
    bad = {k: v for k, v in scores.items() if not floor < v < ceiling}
    shown = ", ".join(f"{k} {v:.3g}" for k, v in scores.items())
    return Gate(name, not bad, f"{shown} (needs each in ({floor:g}, {ceiling:g}))")


def gate_off_floor(name: str, scores: dict[str, float], floor: float = 0.02, ceiling: float = 0.98) -> Gate:
    """Not every arm at the floor, and not every arm at the ceiling (else no difference can show)."""
    shown = ", ".join(f"{k} {v:.3g}" for k, v in scores.items())
    stuck = all(v <= floor for v in scores.values()) or all(v >= ceiling for v in scores.values())
    rule = f"every arm is <= {floor:g}" + (f" or every arm >= {ceiling:g}" if ceiling != float("inf") else "")
    return Gate(name, not stuck, f"{shown} (fails when {rule})")


def gate_above(name: str, score: float, baseline: float, by: float = 0.0, what: str = "baseline") -> Gate:
    """``score`` beats ``baseline`` by more than ``by`` (e.g. true image vs shuffled image)."""
    return Gate(name, score > baseline + by, f"{score:.3g} vs {what} {baseline:.3g} (needs a lead over {by:g})")


@dataclass(frozen=True)
class Interval:
    """A two-sided interval on the mean paired difference (paper's direction: positive = as claimed)."""

    diff: float
    lo: float
    hi: float
    se: float
    df: float
    seed_var: float  # share of the variance that comes from seeds (squared standard error)
    item_var: float  # ... and from items
    n_seeds: int
    n_items: int
    paired_items: bool
    level: float

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2


def _as_matrix(x, what: str) -> np.ndarray:
    """Seeds × items; a flat list is one value per seed (a seed-level metric, one "item")."""
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"{what}: expected seeds × items numbers, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{what}: contains NaN or infinite values ({int((~np.isfinite(a)).sum())} of {a.size})")
    return a


def _t(q: float, df: float) -> float:
    return float(stats.t.ppf(q, df)) if math.isfinite(df) else float(stats.norm.ppf(q))


def _combine(terms: list[tuple[float, int]]) -> tuple[float, float]:
    """Total variance of independent terms (variance, its degrees of freedom) and Satterthwaite's df."""
    terms = [(v, d) for v, d in terms if v > 0 and d > 0]
    total = sum(v for v, _ in terms)
    if total == 0:
        return 0.0, math.inf
    return total, total ** 2 / sum(v ** 2 / d for v, d in terms)


def _crossed_variance(d: np.ndarray) -> tuple[float, float, float, float]:
    """Variance of the grand mean of ``d`` (seeds × items, both random) and its degrees of freedom.

    Two-way random effects without replication, d[s, i] = mu + a_s + b_i + e_si. The unbiased
    estimate of Var(mean) is (MS_seed + MS_item − MS_resid) / (S·I), but with two or three seeds its
    seed component is so poorly known that subtracting MS_resid (and truncating at zero) lets a lucky
    draw hide real run-to-run noise: simulated at the book's designs it decided up to 13% of null
    experiments. The book therefore uses (MS_seed + MS_item) / (S·I), which counts the interaction
    twice, with Satterthwaite's degrees of freedom (the seed term known to n_seeds − 1 of them): a
    wider, calibrated interval (``tests/test_report_verdicts.py``); with two seeds see the note below. One seed or one item reduces it
    to the ordinary standard error over the other axis.
    """
    n_s, n_i = d.shape
    if n_s == 1 or n_i == 1:
        flat = d.ravel()
        v = flat.var(ddof=1) / flat.size if flat.size > 1 else 0.0
        return (v, (flat.size - 1) if v > 0 else math.inf,
                v if n_i == 1 else 0.0, v if n_s == 1 else 0.0)
    grand = d.mean()
    row, col = d.mean(axis=1), d.mean(axis=0)
    ms_seed = n_i * ((row - grand) ** 2).sum() / (n_s - 1)
    ms_item = n_s * ((col - grand) ** 2).sum() / (n_i - 1)
    resid = d - row[:, None] - col[None, :] + grand
    df_r = (n_s - 1) * (n_i - 1)
    ms_resid = (resid ** 2).sum() / df_r
    n = n_s * n_i
    item_part = ms_item / n  # item choice plus the seed × item noise of the mean
    seed_part = ms_seed / n  # run-to-run shift plus the same noise again: counted twice, on purpose
    total = item_part + seed_part
    if total <= 0:
        return 0.0, math.inf, 0.0, 0.0
    # Satterthwaite; the seed term is known only to n_seeds - 1 degrees of freedom.
    df = total ** 2 / (item_part ** 2 / (n_i - 1) + seed_part ** 2 / (n_s - 1))
    if n_s == 2 and (ms_seed - ms_resid) / n > 0.1 * total:
        # Two seeds give the seed term one degree of freedom, and Satterthwaite's df, computed from
        # that one-df estimate, is itself too noisy: when the two runs happen to agree it reports
        # many df and a narrow interval (simulated: up to 9% of null experiments decided). Trust
        # only the seed term's own df whenever the run-to-run shift (beyond the seed × item noise) is a
        # real share of the variance.
        df = 1.0
    return float(total), float(df), float(seed_part), float(total - seed_part)


def paired_interval(treatment, control, *, higher_is_better: bool = True, paired_items: bool = True,
                    level: float = 0.95) -> Interval:
    """The interval on mean(treatment − control), seeds paired by row, items by column when shared.

    Paired items: the variance of the mean difference comes from a crossed seeds × items analysis
    (:func:`_crossed_variance`), so both the run-to-run noise and the choice of items count, and two
    or three seeds get few degrees of freedom (a wide t interval). Unpaired items: a seed term plus one
    item term per arm. With one seed the interval covers item noise only; with one item (a seed-level
    metric) it is the paired t interval over seeds.
    """
    t, c = _as_matrix(treatment, "treatment"), _as_matrix(control, "control")
    sign = 1.0 if higher_is_better else -1.0
    if t.shape[0] != c.shape[0]:
        raise ValueError(f"the arms have different numbers of seeds ({t.shape[0]} vs {c.shape[0]})")
    n_seeds = t.shape[0]
    if paired_items:
        if t.shape != c.shape:
            raise ValueError(f"paired items need the same seeds × items in both arms, got {t.shape} vs {c.shape}")
        d = sign * (t - c)
        n_items = d.shape[1]
        diff = float(d.mean())
        total, df, seed_var, item_var = _crossed_variance(d)
    else:
        per_seed = sign * (t.mean(axis=1) - c.mean(axis=1))
        seed_var = per_seed.var(ddof=1) / n_seeds if n_seeds > 1 else 0.0
        it, ic = t.mean(axis=0), c.mean(axis=0)
        vt = it.var(ddof=1) / len(it) if len(it) > 1 else 0.0
        vc = ic.var(ddof=1) / len(ic) if len(ic) > 1 else 0.0
        total, df = _combine([(seed_var, n_seeds - 1), (vt, len(it) - 1), (vc, len(ic) - 1)])
        item_var = vt + vc
        diff, n_items = float(per_seed.mean()), min(len(it), len(ic))
    if n_seeds == 1 and n_items == 1:  # one number per arm: no interval can be formed
        return Interval(diff, -math.inf, math.inf, math.inf, 0.0, 0.0, 0.0, 1, 1, paired_items, level)
    se = math.sqrt(total)
    h = _t(0.5 + level / 2, df) * se
    return Interval(diff, diff - h, diff + h, se, df, float(seed_var), float(item_var), n_seeds, n_items,
                    paired_items, level)


def decide(iv: Interval, margin: float, kind: Kind = "superiority") -> str:
    """The verdict an interval gives against ``±margin`` (before any gate is applied).

    superiority (the paper says the treatment is better): lower bound above +margin → reproduced;
    upper bound below −margin → opposite; whole interval inside ±margin → no effect at toy scale.
    equivalence (the paper says the arms do not differ, e.g. "not after SFT"): inside ±margin →
    reproduced; entirely outside → opposite. noninferiority (the paper says "nearly matches"):
    lower bound above −margin → reproduced; upper bound below −margin → opposite.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    inside = -margin <= iv.lo and iv.hi <= margin
    if kind == "superiority":
        if iv.lo > margin:
            return "reproduced"
        if iv.hi < -margin:
            return "opposite"
        return "no effect at toy scale" if inside else "inconclusive"
    if kind == "equivalence":
        if inside:
            return "reproduced"
        return "opposite" if (iv.lo > margin or iv.hi < -margin) else "inconclusive"
    if iv.lo > -margin:
        return "reproduced"
    return "opposite" if iv.hi < -margin else "inconclusive"


def minimum_detectable_effect(iv: Interval, margin: float, power: float = 0.8) -> float:
    """The true difference the rule would call reproduced with probability ``power`` at this n."""
    if not math.isfinite(iv.se):
        return math.inf
    q = 0.5 + iv.level / 2
    return margin + (_t(q, iv.df) + _t(power, iv.df)) * iv.se


def more_data_needed(iv: Interval, margin: float, kind: Kind = "superiority") -> float | None:
    """How many times the items and seeds an inconclusive result needs, if the estimate stayed put.

    The interval's half-width shrinks like 1/sqrt(n); the result decides once the half-width is
    smaller than the distance from the estimate to the nearest decision boundary (±margin).
    ``None`` when the estimate sits on a boundary (no amount of data decides it at this estimate).
    """
    if not math.isfinite(iv.se):
        return None
    d = iv.diff
    if kind == "noninferiority":
        gap = abs(d + margin)
    elif abs(d) >= margin:
        gap = abs(d) - margin
    else:
        gap = margin - abs(d)
    if gap <= 1e-12:
        return None
    return max(1.0, (iv.half_width / gap) ** 2)


@dataclass
class Comparison:
    """One two-arm comparison with its interval, margin, gates and verdict (one part of a claim)."""

    name: str
    metric: str
    labels: tuple[str, str]
    higher_is_better: bool
    kind: str
    margin: float
    margin_reason: str
    interval: Interval
    arm_means: dict[str, float]
    gates: list[Gate] = field(default_factory=list)
    rule_verdict: str = "inconclusive"  # what the interval says, ignoring gates
    verdict: str = "inconclusive"
    mde: float = math.inf
    needed: float | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["interval"] = asdict(self.interval)
        d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Comparison":
        d = dict(d)
        d["interval"] = Interval(**d["interval"])
        d["gates"] = [Gate(**g) for g in d.get("gates", [])]
        d["labels"] = tuple(d["labels"])
        return cls(**d)

    @property
    def not_run(self) -> bool:
        """A part whose arms were never trained: a gate of their starting point failed first (no interval)."""
        return self.interval.n_seeds == 0

    def sentence(self) -> str:
        """The comparison in words, every number from the interval (for cards and chapter prose)."""
        iv = self.interval
        if self.not_run:
            failed = "; ".join(f"{g.name} failed ({g.detail})" for g in self.gates if not g.passed)
            return (f"{self.labels[0]} vs {self.labels[1]} on {self.metric}: not run at the declared design, because "
                    f"a gate failed first → {self.verdict}; {failed}")
        lv = f"{iv.level:.0%}"
        unit = "" if self.higher_is_better else " (lower is better; signed so + favours the treatment)"
        s = (f"{self.labels[0]} − {self.labels[1]} on {self.metric}{unit}: {iv.diff:+.3g}, {lv} interval "
             f"[{iv.lo:+.3g}, {iv.hi:+.3g}] against a margin of ±{self.margin:g} ({iv.n_seeds} seed(s) × "
             f"{iv.n_items} item(s){', paired' if iv.paired_items else ''}) → {self.rule_verdict}")
        if self.kind == "superiority" and math.isfinite(self.mde):
            s += f"; smallest effect this design detects 80% of the time: {self.mde:.3g}"
        if self.rule_verdict == "inconclusive":
            if self.needed is None:
                s += "; the estimate sits on the margin, so more data would not settle it at this value"
            else:
                s += (f"; about {self.needed:.1f}× the items and seeds would decide it if the estimate stayed "
                      f"(the {'seed' if iv.seed_var > iv.item_var else 'item'} term dominates the variance)")
        if iv.n_seeds == 1 and iv.n_items > 1:
            s += "; one seed: the interval covers item noise only"
        failed = [g for g in self.gates if not g.passed]
        if failed:
            s += "; untestable: " + "; ".join(f"{g.name} failed ({g.detail})" for g in failed)
        return s


def compare(treatment, control, *, metric: str, margin: float, margin_reason: str, name: str = "",
            labels: tuple[str, str] = ("treatment", "control"), kind: Kind = "superiority",
            higher_is_better: bool = True, paired_items: bool = True, gates: Sequence[Gate] = (),
            level: float = 0.95) -> Comparison:
    """Compare two arms measured as seeds × items; the verdict is computed, never chosen by hand."""
    if not str(margin_reason).strip():
        raise ValueError(f"{name or metric}: declare why the margin is {margin} (margin_reason)")
    iv = paired_interval(treatment, control, higher_is_better=higher_is_better, paired_items=paired_items,
                         level=level)
    rule = decide(iv, margin, kind)
    gates = list(gates)
    verdict = "untestable at toy scale" if any(not g.passed for g in gates) else rule
    means = {labels[0]: float(np.mean(_as_matrix(treatment, "treatment"))),
             labels[1]: float(np.mean(_as_matrix(control, "control")))}
    return Comparison(name or metric, metric, tuple(labels), higher_is_better, kind, float(margin), margin_reason,
                      iv, means, gates, rule, verdict, minimum_detectable_effect(iv, margin),
                      more_data_needed(iv, margin, kind) if rule == "inconclusive" else None)


def level_in_band(accuracies: Sequence[float], lo: float = 0.15, hi: float = 0.85, ties: str = "first") -> int | None:
    """The design rule for where a claim is measured: the index of the level whose control accuracy lies in
    ``[lo, hi]`` (inclusive) and is nearest 0.5, where paired 0/1 outcomes disagree most often. ``ties``:
    "first" or "last" (the harder level, when levels run from easy to hard). ``None`` when every level is at
    the floor or the ceiling (the claim is then untestable at toy scale)."""
    if ties not in ("first", "last"):
        raise ValueError(f"ties must be 'first' or 'last', got {ties!r}")
    inside = [i for i, a in enumerate(accuracies) if lo <= a <= hi]
    if not inside:
        return None
    best = min(abs(accuracies[i] - 0.5) for i in inside)
    picks = [i for i in inside if abs(accuracies[i] - 0.5) == best]
    return picks[0] if ties == "first" else picks[-1]


def combine_all(parts: Sequence[Comparison | str]) -> str:
    """A claim made of several statements, all of which the paper asserts (e.g. claim 4: "lifts
    base scores" *and* "not post-SFT scores"; claim 9: "B beats A" *and* "35% of B nearly matches B").

    untestable if a part is untestable; opposite if a part contradicts the paper; reproduced if every
    part is; no effect at toy scale if a superiority part shows no effect (the effect the claim is
    about is absent, whatever the rest says); inconclusive otherwise.
    """
    verdicts = [p if isinstance(p, str) else p.verdict for p in parts]
    if not verdicts:
        raise ValueError("a claim needs at least one part")
    for v in verdicts:
        if v not in VERDICTS:
            raise ValueError(f"unknown verdict {v!r}")
    if "untestable at toy scale" in verdicts:
        return "untestable at toy scale"
    if "opposite" in verdicts:
        return "opposite"
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if "no effect at toy scale" in verdicts:
        return "no effect at toy scale"
    return "inconclusive"


# --- calibration by simulation -----------------------------------------------------------------
def simulate(n_seeds: int, n_items: int, margin: float, *, effect: float = 0.0, outcome: str = "binary",
             p_control: float = 0.5, item_sd: float = 0.25, seed_sd: float = 0.03, noise_sd: float = 1.0,
             kind: Kind = "superiority", trials: int = 1000, rng_seed: int = 0) -> dict[str, float]:
    """Share of simulated experiments that get each verdict, for a known true ``effect``.

    binary: item i has a control success probability drawn around ``p_control`` (spread ``item_sd``),
    each (arm, seed) run shifts it by a normal ``seed_sd`` (a different training run), the treatment
    adds ``effect``; outcomes are Bernoulli, both arms on the same items. continuous: per-item values
    with item spread ``item_sd``, run shift ``seed_sd`` and per-observation noise ``noise_sd``.
    """
    rng = np.random.default_rng(rng_seed)
    counts = dict.fromkeys(VERDICTS, 0)
    for _ in range(trials):
        if outcome == "binary":
            a = max(p_control * (1 / item_sd ** 2 * p_control * (1 - p_control) - 1), 1e-3) if item_sd else None
            base = (rng.beta(a, a * (1 - p_control) / p_control, n_items) if a else np.full(n_items, p_control))
            shift = rng.normal(0, seed_sd, (2, n_seeds, 1))
            p_c = np.clip(base + shift[0], 0, 1)
            p_t = np.clip(base + shift[1] + effect, 0, 1)
            c = (rng.random((n_seeds, n_items)) < p_c).astype(float)
            t = (rng.random((n_seeds, n_items)) < p_t).astype(float)
        elif outcome == "continuous":
            base = rng.normal(0, item_sd, n_items)
            shift = rng.normal(0, seed_sd, (2, n_seeds, 1))
            c = base + shift[0] + rng.normal(0, noise_sd, (n_seeds, n_items))
            t = base + shift[1] + effect + rng.normal(0, noise_sd, (n_seeds, n_items))
        else:
            raise ValueError(f"outcome must be 'binary' or 'continuous', got {outcome!r}")
        counts[decide(paired_interval(t, c), margin, kind)] += 1
    return {k: v / trials for k, v in counts.items()}


def decided_share(rates: dict[str, float]) -> float:
    """Share called reproduced or opposite (what must stay at or below 5% when there is no effect)."""
    return rates["reproduced"] + rates["opposite"]


# Planning assumptions of the simulation for a declared design: a run-to-run shift of 2 accuracy
# points for 0/1 outcomes, and a fifth of the declared per-item spread for continuous metrics.
SEED_SD_BINARY = 0.02
SEED_SD_SHARE = 0.2


def simulate_design(d: dict, effect: float, *, p_control: float = 0.5, trials: int = 300,
                    rng_seed: int = 11) -> dict[str, float]:
    """:func:`simulate` at a declared part's seeds, items, margin and kind (see ``report.CLAIMS``)."""
    kw = dict(effect=effect, kind=d["kind"], trials=trials, rng_seed=rng_seed)
    if d["outcome"] == "binary":
        return simulate(d["n_seeds"], d["n_items"], d["margin"], outcome="binary", p_control=p_control,
                        seed_sd=SEED_SD_BINARY, **kw)
    sd = d["noise_sd"]
    n_items = 1 if d["outcome"] == "seed" else d["n_items"]
    return simulate(d["n_seeds"], n_items, d["margin"], outcome="continuous", item_sd=sd if n_items > 1 else 0.0,
                    noise_sd=sd, seed_sd=SEED_SD_SHARE * sd, **kw)


def null_effect(d: dict) -> float:
    """The true difference at which deciding for the paper is a false alarm."""
    return {"superiority": 0.0, "equivalence": 2 * d["margin"], "noninferiority": -2 * d["margin"]}[d["kind"]]


def design_power(claims: dict, trials: int = 300) -> list[dict]:
    """For every declared comparison: how often the rule decides with no effect, and its power.

    Power is the share called "reproduced" when the paper is right by a clear amount: an effect of
    twice the margin for a superiority part, no difference at all for equivalence and non-inferiority.
    """
    rows = []
    for claim, meta in claims.items():
        for name, d in meta["parts"].items():
            if d["outcome"] == "check":
                continue
            null = simulate_design(d, null_effect(d), trials=trials)
            false = decided_share(null) if d["kind"] == "superiority" else null["reproduced"]
            effect = 2 * d["margin"] if d["kind"] == "superiority" else 0.0
            power = simulate_design(d, effect, trials=trials, rng_seed=12)["reproduced"]
            rows.append({"claim": claim, "part": name, "seeds": d["n_seeds"],
                         "items": 1 if d["outcome"] == "seed" else d["n_items"], "margin": d["margin"],
                         "kind": d["kind"], "false_decisions": false, "power": power})
    return rows
