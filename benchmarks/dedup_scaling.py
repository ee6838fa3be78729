"""How the chapter-1 data pipeline scales (a script, not a test: timings depend on the machine).

    .venv/bin/python benchmarks/dedup_scaling.py                 # 5k, 20k, 80k documents
    .venv/bin/python benchmarks/dedup_scaling.py --sizes 2000 5000

Prints
1. documents/s of each pipeline stage, on a 5k-document toy corpus;
2. MinHash-LSH dedup time (datasketch) at each size, beside exact pairwise Jaccard: the exact all-pairs
   time is measured on a random sample of pairs and scaled quadratically to n(n-1)/2 pairs (said so in
   the output);
3. the recall of LSH against the exact duplicate pairs (Jaccard >= threshold), found exactly with a
   prefix-filtered similarity join (a pair above the threshold must share a token in its rarest-first
   prefix, so no pair is missed);
4. last line ``ratio: X`` = exact time / LSH time at 20k documents (or the largest size below it).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datatrove.data import Document  # noqa: E402

from infir_lib.data import steps  # noqa: E402
from infir_lib.data.pipeline import load_benchmarks, make_toy_scorers, DataConfig  # noqa: E402
from infir_lib.data.toy_sources import negatives, seed_code, seed_math, seed_reasoning  # noqa: E402
from infir_lib.data.toy_web import generate_messy_corpus  # noqa: E402


def to_docs(rows):
    return [Document(text=r["text"], id=r["id"], metadata={k: v for k, v in r.items() if k not in ("text", "id")})
            for r in rows]


def stage_throughput(n: int = 5000) -> None:
    rows = generate_messy_corpus(n, 0)
    cfg = DataConfig()
    stages = [
        steps.HeuristicFilter(word_tokenizer="regex"),
        steps.ReasoningRecall({"math": [r["text"] for r in seed_math(300, 1)],
                               "code": [r["text"] for r in seed_code(300, 1)],
                               "reasoning": [r["text"] for r in seed_reasoning(300, 1)]},
                              [r["text"] for r in negatives(3000, 2)], n_negatives=1500),
        steps.MinHashDedup(),
        steps.QualityAssessment(make_toy_scorers(cfg)),
        steps.Decontaminate(load_benchmarks(["gsm8k", "humaneval", "toy_arith"])),
    ]
    docs = to_docs(rows)
    print(f"stage throughput on {n} generated documents (each stage fed the previous stage's output):")
    for st in stages:
        t0 = time.perf_counter()
        out = list(st.run(docs))
        dt = time.perf_counter() - t0
        print(f"  {st.stage:10s} {len(docs):6d} docs in {dt:6.2f} s = {len(docs) / dt:8.0f} docs/s  (kept {len(out)})")
        docs = out
    # spaCy word splitting, FineWeb's own choice, for comparison
    spacy_stage = steps.HeuristicFilter(word_tokenizer="spacy")
    sample = to_docs(rows[:1000])
    t0 = time.perf_counter()
    list(spacy_stage.run(sample))
    dt = time.perf_counter() - t0
    print(f"  heuristic with spaCy word splitting: {len(sample) / dt:.0f} docs/s (1000 docs)")


def exact_pairs(sets: list[set[str]], threshold: float) -> set[tuple[int, int]]:
    """All pairs with Jaccard >= threshold, exactly (prefix-filtered similarity join)."""
    freq = Counter(s for ss in sets for s in ss)
    index: dict[str, list[int]] = defaultdict(list)
    pairs = set()
    for i, ss in enumerate(sets):
        ordered = sorted(ss, key=lambda s: (freq[s], s))
        prefix = len(ordered) - math.ceil(threshold * len(ordered)) + 1
        cands = set()
        for s in ordered[:prefix]:
            cands.update(index[s])
            index[s].append(i)
        for j in cands:
            if steps.jaccard(ss, sets[j]) >= threshold:
                pairs.add((j, i))
    return pairs


def lsh_candidate_pairs(sigs, threshold: float, num_perm: int) -> set[tuple[int, int]]:
    from datasketch import MinHashLSH
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    pairs = set()
    for i, m in enumerate(sigs):
        for c in lsh.query(m):
            pairs.add((int(c), i))
        lsh.insert(str(i), m, check_duplication=False)
    return pairs


def dedup_scaling(sizes: list[int], threshold: float = 0.7, num_perm: int = 128, shingle: int = 5,
                  sample_pairs: int = 20000) -> float:
    ratio_at = None
    print(f"\nMinHash-LSH vs exact pairwise Jaccard ({shingle}-word shingles, {num_perm} permutations, "
          f"threshold {threshold}):")
    print(f"  {'docs':>6} {'words/doc':>9} {'signatures s':>12} {'LSH dedup s':>11} {'LSH total s':>11} "
          f"{'exact all-pairs s (scaled)':>26} {'dup pairs':>9} {'LSH recall':>10}")
    for n in sizes:
        rows = generate_messy_corpus(n, 0, benchmarks={})
        sets = [steps.shingles(r["text"], shingle) for r in rows]
        words = sum(len(r["text"].split()) for r in rows) / n
        t0 = time.perf_counter()
        sigs = steps.minhashes(sets, num_perm)
        t1 = time.perf_counter()
        steps.lsh_duplicates(sigs, threshold, num_perm)
        t2 = time.perf_counter()
        lsh_total = t2 - t0
        # exact pairwise Jaccard: time a random sample of pairs, scale to all n(n-1)/2 pairs
        rng = random.Random(0)
        pairs = [(rng.randrange(n), rng.randrange(n)) for _ in range(sample_pairs)]
        t3 = time.perf_counter()
        for i, j in pairs:
            steps.jaccard(sets[i], sets[j])
        per_pair = (time.perf_counter() - t3) / sample_pairs
        exact_time = per_pair * n * (n - 1) / 2
        truth = exact_pairs(sets, threshold)
        found = lsh_candidate_pairs(sigs, threshold, num_perm)
        recall = len(truth & found) / len(truth) if truth else float("nan")
        print(f"  {n:6d} {words:9.0f} {t1 - t0:12.2f} {t2 - t1:11.2f} {lsh_total:11.2f} {exact_time:26.0f} "
              f"{len(truth):9d} {recall:10.3f}")
        if n <= 20000:
            ratio_at = (n, exact_time / lsh_total)
    print("  (exact all-pairs time = mean time of one Jaccard on a sample of "
          f"{sample_pairs} random pairs x n(n-1)/2: measured on a sample, scaled quadratically)")
    if ratio_at is None:
        return float("nan")
    print(f"  ratio measured at {ratio_at[0]} documents")
    return ratio_at[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 80000])
    ap.add_argument("--skip-stages", action="store_true")
    args = ap.parse_args(argv)
    if not args.skip_stages:
        stage_throughput()
    ratio = dedup_scaling(args.sizes)
    print(f"ratio: {ratio:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
