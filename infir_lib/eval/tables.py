"""Results tables in the paper's layout (InfiR Tables 1 and 2), the paper's numbers beside ours.

The ``PAPER_*`` dictionaries are the numbers *reported* in the paper (arXiv 2502.11573, §5.1.1),
copied from its tables so that a reader can see them next to what a run measured; they are never
presented as measured. ``claimed`` holds the values in parentheses (what each model's own paper
claims). A model the book did not evaluate shows "—" in the "ours" column.
"""

from __future__ import annotations

import math

TABLE1_COLUMNS = ["MMLU", "GSM8K", "MATH", "HumanEval", "MBPP", "MBPP(3-shot)"]
TABLE2_COLUMNS = ["MMLU", "GSM8K", "MATH", "HumanEval", "MBPP"]

# Table 1: base models, few-shot.
PAPER_TABLE1 = {
    "Llama-3.2-1B": {"MMLU": 32.74, "GSM8K": 8.11, "MATH": 3.42, "HumanEval": 17.68, "MBPP": 33.46, "MBPP(3-shot)": 24.8},
    "Qwen-2.5-1.5B": {"MMLU": 63.03, "GSM8K": 66.57, "MATH": 31.24, "HumanEval": 35.37, "MBPP": 58.37, "MBPP(3-shot)": 41.4},
    "InfiR-1B-Base": {"MMLU": 47.24, "GSM8K": 63.46, "MATH": 31.82, "HumanEval": 37.80, "MBPP": 53.40, "MBPP(3-shot)": 37.6},
}
CLAIMED_TABLE1 = {
    "Llama-3.2-1B": {"MMLU": 32.2},
    "Qwen-2.5-1.5B": {"MMLU": 60.9, "GSM8K": 68.5, "MATH": 35.0, "HumanEval": 37.2, "MBPP": 60.2},
}
# Table 2: instruct models, zero-shot.
PAPER_TABLE2 = {
    "Llama-3.2-1B-Instruct": {"MMLU": 46.27, "GSM8K": 47.9, "MATH": 30.0, "HumanEval": 39.63, "MBPP": 49.03},
    "Qwen-2.5-1.5B-Instruct": {"MMLU": 61.78, "GSM8K": 74.3, "MATH": 53.4, "HumanEval": 51.83, "MBPP": 56.81},
    "InfiR-1B-Instruct": {"MMLU": 50.22, "GSM8K": 70.9, "MATH": 46.4, "HumanEval": 58.54, "MBPP": 56.03},
}
CLAIMED_TABLE2 = {
    "Llama-3.2-1B-Instruct": {"MMLU": 49.3, "GSM8K": 44.4, "MATH": 30.6},
    "Qwen-2.5-1.5B-Instruct": {"GSM8K": 73.2, "MATH": 55.2, "HumanEval": 61.6, "MBPP": 63.2},
}

# Hub ids of the models in the tables (what configs/full/eval.yaml evaluates).
HUB_IDS = {
    "Llama-3.2-1B": "meta-llama/Llama-3.2-1B",
    "Llama-3.2-1B-Instruct": "meta-llama/Llama-3.2-1B-Instruct",
    "Qwen-2.5-1.5B": "Qwen/Qwen2.5-1.5B",
    "Qwen-2.5-1.5B-Instruct": "Qwen/Qwen2.5-1.5B-Instruct",
    "InfiR-1B-Base": "InfiX-ai/InfiR-1B-Base",
    "InfiR-1B-Instruct": "InfiX-ai/InfiR-1B-Instruct",
}
NAME_OF = {v: k for k, v in HUB_IDS.items()}


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.2f}"


def paper_table(table: int = 1, measured: dict[str, dict[str, float]] | None = None, *, as_markdown: bool = False):
    """Table 1 (base, few-shot) or 2 (instruct, zero-shot): for every model and benchmark the paper's
    number, the claimed number in parentheses where the paper gives one, and ours (``measured``,
    percentages keyed by model name) or "—". Returns a pandas DataFrame (or Markdown text)."""
    import pandas as pd

    if table not in (1, 2):
        raise ValueError("table must be 1 or 2")
    paper, claimed, cols = (PAPER_TABLE1, CLAIMED_TABLE1, TABLE1_COLUMNS) if table == 1 else \
        (PAPER_TABLE2, CLAIMED_TABLE2, TABLE2_COLUMNS)
    measured = measured or {}
    rows = []
    for model in list(paper) + [m for m in measured if m not in paper]:
        row = {"model": model}
        for c in cols:
            p = paper.get(model, {}).get(c)
            cl = claimed.get(model, {}).get(c)
            row[f"{c} paper"] = _fmt(p) + (f" ({cl})" if cl is not None else "") if p is not None else "—"
            row[f"{c} ours"] = _fmt(measured.get(model, {}).get(c))
        rows.append(row)
    df = pd.DataFrame(rows).set_index("model")
    return df.to_markdown() if as_markdown else df
