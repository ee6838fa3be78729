"""Results tables in the paper's layout (InfiR Tables 1, 2, 5 and 6), the paper's numbers beside ours.

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

# Table 5 (App. C): Llama-3.2-1B fine-tuned on code datasets, evaluated on all five benchmarks.
TABLE5_COLUMNS = ["GSM8K", "MATH", "MMLU", "MBPP 0-shot", "HumanEval"]
PAPER_TABLE5 = {
    "Llama-3.2 1B Instruct": {"GSM8K": 43.37, "MATH": 15.98, "MMLU": 47.18, "MBPP 0-shot": 36.0, "HumanEval": 39.63},
    "+ code_instructions_122k (122k)": {"GSM8K": 1.9, "MATH": 1.08, "MMLU": 25.31, "MBPP 0-shot": 5.4, "HumanEval": 16.46},
    "+ stack-exchange-instruction (150k)": {"GSM8K": 1.36, "MATH": 1.1, "MMLU": 25.06, "MBPP 0-shot": 2.4, "HumanEval": 3.66},
    "+ magicoder-oss (75k)": {"GSM8K": 3.11, "MATH": 1.18, "MMLU": 24.61, "MBPP 0-shot": 17.0, "HumanEval": 9.15},
    "+ ScaleQuest-Code (156k)": {"GSM8K": 4.55, "MATH": 2.74, "MMLU": 27.15, "MBPP 0-shot": 31.0, "HumanEval": 48.17},
    "+ opc-sft-stage2 (436k)": {"GSM8K": 3.34, "MATH": 0.5, "MMLU": 26.46, "MBPP 0-shot": 40.6, "HumanEval": 54.88},
    "+ opc-sft-stage2 + magicoder-oss": {"GSM8K": 3.34, "MATH": 1.34, "MMLU": 23.92, "MBPP 0-shot": 39.8, "HumanEval": 59.15},
    "+ opc-sft-stage2 + ScaleQuest-Code": {"GSM8K": 4.7, "MATH": 1.02, "MMLU": 26.67, "MBPP 0-shot": 40.8, "HumanEval": 60.98},
    "+ opc-sft-stage2 + magicoder-oss + ScaleQuest-Code": {"GSM8K": 3.41, "MATH": 2.38, "MMLU": 25.89, "MBPP 0-shot": 41.4,
                                                           "HumanEval": 57.93},
}
CLAIMED_TABLE5 = {"Llama-3.2 1B Instruct": {"GSM8K": 44.4, "MATH": 30.6, "MMLU": 49.3}}
# Table 6 (App. D): long-CoT fine-tuning, accuracies as fractions.
TABLE6_COLUMNS = ["AIME24", "MATH500", "AMC23", "GPQA", "OlympiadBench"]
PAPER_TABLE6 = {
    "Llama-3.2-1B-Instruct": {"AIME24": 0.00, "MATH500": 0.25, "AMC23": 0.175, "GPQA": 0.02, "OlympiadBench": 0.043},
    "Qwen2.5-1.5B-Instruct": {"AIME24": 0.067, "MATH500": 0.492, "AMC23": 0.225, "GPQA": 0.242, "OlympiadBench": 0.185},
    "DeepSeek-R1-Distill-Qwen-1.5B": {"AIME24": 0.289, "MATH500": 0.839, "AMC23": 0.700, "GPQA": 0.338,
                                      "OlympiadBench": 0.436},
    "InfiR-1B-Instruct (200k Long CoT)": {"AIME24": 0.033, "MATH500": 0.474, "AMC23": 0.225, "GPQA": 0.288,
                                          "OlympiadBench": 0.181},
    "InfiR-1B-Instruct (2M Long CoT)": {"AIME24": 0.067, "MATH500": 0.62, "AMC23": 0.300, "GPQA": 0.364,
                                        "OlympiadBench": 0.224},
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


def _fmt(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}f}"


TABLES = {1: (PAPER_TABLE1, CLAIMED_TABLE1, TABLE1_COLUMNS, 2), 2: (PAPER_TABLE2, CLAIMED_TABLE2, TABLE2_COLUMNS, 2),
          5: (PAPER_TABLE5, CLAIMED_TABLE5, TABLE5_COLUMNS, 2), 6: (PAPER_TABLE6, {}, TABLE6_COLUMNS, 3)}


def paper_table(table: int = 1, measured: dict[str, dict[str, float]] | None = None, *, as_markdown: bool = False):
    """Table 1 (base, few-shot), 2 (instruct, zero-shot), 5 (code SFT) or 6 (long CoT): for every model
    and benchmark the paper's number, the claimed number in parentheses where the paper gives one, and
    ours (``measured``, in the table's unit, keyed by model name) or "—". Returns a pandas DataFrame
    (or Markdown text)."""
    import pandas as pd

    if table not in TABLES:
        raise ValueError(f"table must be one of {sorted(TABLES)}")
    paper, claimed, cols, digits = TABLES[table]
    measured = measured or {}
    rows = []
    for model in list(paper) + [m for m in measured if m not in paper]:
        row = {"model": model}
        for c in cols:
            p = paper.get(model, {}).get(c)
            cl = claimed.get(model, {}).get(c)
            row[f"{c} paper"] = _fmt(p, digits) + (f" ({cl})" if cl is not None else "") if p is not None else "—"
            row[f"{c} ours"] = _fmt(measured.get(model, {}).get(c), digits)
        rows.append(row)
    df = pd.DataFrame(rows).set_index("model")
    return df.to_markdown() if as_markdown else df
