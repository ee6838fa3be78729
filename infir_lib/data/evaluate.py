"""Score a pipeline run against the toy corpus's ground truth, and re-run two decisions cheaply.

The notebook calls these to show per-stage precision/recall and to let a reader move the MinHash and
recall thresholds without re-running the pipeline.
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np

from . import steps
from .pipeline import STAGES, DataResult

# what each stage is meant to remove, in terms of the generator's labels
HEURISTIC_DEFECTS = {"boilerplate", "spam", "list", "short", "junk", "colon_end", "language", "generated", "minified"}


def _input_rows(res: DataResult, stage: str) -> list[dict]:
    """The documents that entered ``stage`` (its output is the later stages' drops plus the dataset)."""
    later = STAGES[STAGES.index(stage):]
    rows = [r for s in later for r in res.removed(s)]
    rows += res.load_dataset().to_list()
    return sorted(rows, key=lambda r: r["id"])


def stage_table(res: DataResult) -> list[dict]:
    """Per stage: documents in, dropped, and precision/recall of the drops against the truth."""
    reps = res.reports
    table = []
    for stage in STAGES:
        rows = _input_rows(res, stage)
        dropped = {r["id"] for r in res.removed(stage)}
        if stage == "heuristic":
            should = {r["id"] for r in rows if r.get("defect") in HEURISTIC_DEFECTS}
            target = "spam, boilerplate, lists, short/junk pages, colon endings, bad code files"
        elif stage == "recall":
            should = {r["id"] for r in rows if r.get("source") in ("web", "math_web") and not r.get("reasoning")}
            target = "crawl pages that are not math, code-related or reasoning"
        elif stage == "dedup":
            ev = reps["dedup"]["evaluation"]
            table.append({"stage": stage, "docs_in": len(rows), "dropped": len(dropped), "should_drop": ev["tp"] + ev["fn"],
                          "precision": ev["precision"], "recall": ev["recall"],
                          "target": "all but the first copy of each exact or edited copy group"})
            continue
        elif stage == "quality":
            q = steps.QualityAssessment(lambda: {}, reps["quality"]["edu_threshold"], reps["quality"]["math_threshold"])
            route = lambda r: "code" if r.get("source") == "code" else "math" if r.get("recall_domain") == "math" else "edu"
            from datatrove.data import Document
            should = {r["id"] for r in rows if q._truly_low(Document(text="", id=r["id"], metadata=r), route(r))}
            target = "text below 3 on the truth scale, code that does not parse"
        else:
            should = {r["id"] for r in rows if r.get("contaminated")}
            target = "documents with a planted benchmark item"
        tp = len(dropped & should)
        table.append({"stage": stage, "docs_in": len(rows), "dropped": len(dropped), "should_drop": len(should),
                      "precision": tp / len(dropped) if dropped else float("nan"),
                      "recall": tp / len(should) if should else float("nan"), "target": target})
    return table


def final_quality(res: DataResult, raw: list[dict]) -> dict:
    """How clean the output is, and how much of the clean raw material it kept."""
    out = res.load_dataset().to_list()

    def clean(r):
        return r["quality"] == "good" and r["reasoning"] and not r["dup_of"] and not r["contaminated"]

    clean_raw = sum(clean(r) for r in raw)
    clean_out = sum(clean(r) for r in out)
    return {"raw_docs": len(raw), "raw_clean_share": clean_raw / len(raw), "out_docs": len(out),
            "out_clean_share": clean_out / len(out) if out else float("nan"),
            "clean_kept": clean_out / clean_raw if clean_raw else float("nan")}


def examples(res: DataResult, stage: str, k: int = 3, seed: int = 0, chars: int = 300) -> list[dict]:
    """A few documents a stage removed, one per drop reason first."""
    rows = res.removed(stage)
    rng = random.Random(seed)
    rng.shuffle(rows)
    seen, out = set(), []
    for r in rows:
        if r["filter_reason"] not in seen:
            seen.add(r["filter_reason"])
            out.append(r)
    out = (out + [r for r in rows if r not in out])[:k]
    def clip(r):  # show the end of a text when its end is the reason
        t = r["text"]
        if len(t) <= chars:
            return t
        return "..." + t[-chars:] if r["filter_reason"] == "ends_with_colon" else t[:chars] + "..."

    return [{"id": r["id"], "reason": r["filter_reason"], "truth": r.get("defect") or r.get("domain"),
             "text": clip(r)} for r in out]


def false_drops(res: DataResult, stage: str = "heuristic") -> Counter:
    """Why a stage dropped documents the truth says it should have kept (heuristic stage)."""
    return Counter(r["filter_reason"] for r in res.removed(stage) if r.get("defect") not in HEURISTIC_DEFECTS)


class RecallSweep:
    """Precision/recall of the recall stage at any threshold, from the final-round scores it stored:
    per domain (is this page math?) and overall (is it any kind of reasoning page?)."""

    def __init__(self, res: DataResult, domains=("math", "code", "reasoning")):
        rows = [r for r in _input_rows(res, "recall") if r.get("source") in ("web", "math_web")]
        self.domains = domains
        self.scores = {d: np.array([r.get(f"recall_{d}") or 0.0 for r in rows]) for d in domains}
        self.domain = np.array([r.get("domain") for r in rows])
        self.truth = np.array([bool(r.get("reasoning")) for r in rows])

    def at(self, threshold: float) -> list[dict]:
        out, any_pred = [], np.zeros(len(self.truth), bool)
        for d in self.domains:
            pred = self.scores[d] >= threshold
            any_pred |= pred
            out.append({"domain": d, "threshold": threshold, "recalled": int(pred.sum()),
                        **steps.precision_recall(pred, self.domain == d)})
        out.append({"domain": "any (kept)", "threshold": threshold, "recalled": int(any_pred.sum()),
                    **steps.precision_recall(any_pred, self.truth)})
        return out


class DedupSweep:
    """Dedup at any threshold >= ``floor``: MinHash signatures and LSH candidates are computed once."""

    def __init__(self, res: DataResult, floor: float = 0.5):
        rep = res.reports["dedup"]
        rows = _input_rows(res, "dedup")
        self.ids = [r["id"] for r in rows]
        sets = [steps.shingles(r["text"], rep["shingle_size"]) for r in rows]
        self.sigs = steps.minhashes(sets, rep["num_perm"])
        from datasketch import MinHashLSH
        lsh = MinHashLSH(threshold=floor, num_perm=rep["num_perm"])
        self.pairs: dict[int, list[tuple[int, float]]] = {}
        for i, m in enumerate(self.sigs):
            cands = [int(c) for c in lsh.query(m)]
            self.pairs[i] = [(c, float(self.sigs[c].jaccard(m))) for c in cands]
            lsh.insert(str(i), m, check_duplication=False)
        first: dict[str, int] = {}
        self.truth = []
        for i, r in enumerate(rows):
            g = r.get("dup_of") or r["id"]
            self.truth.append(g in first)
            first.setdefault(g, i)

    def at(self, threshold: float) -> dict:
        dropped = set()
        for i in range(len(self.ids)):
            if any(est >= threshold and j not in dropped for j, est in self.pairs[i]):
                dropped.add(i)
        pred = [i in dropped for i in range(len(self.ids))]
        return {"threshold": threshold, "removed": len(dropped), **steps.precision_recall(pred, self.truth)}

