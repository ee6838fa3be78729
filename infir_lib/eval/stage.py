"""The ``eval`` stage: evaluate models on benchmarks with the paper's protocol, one config for both scales.

    from infir_lib import eval as ev
    result = ev.run("configs/toy/eval.yaml")           # the toy base model, CPU, about a minute
    # python -m infir_lib eval --config configs/full/eval.yaml --dry-run
    # python -m infir_lib eval --config configs/full/eval.yaml models='[Qwen/Qwen2.5-1.5B-Instruct]'

Protocol (InfiR §5.1.1): a *base* model is evaluated few-shot (Table 1); an *instruct* model
zero-shot through its chat template (Table 2). ``chat: auto`` decides by the model's name (an
"Instruct" hub id or a toy SFT preset is an instruct model).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .. import stages
from ..config import load_config, resolve_path  # noqa: F401  (load_config: chapter 5 calls stage.load_config)
from ..data.arith import make_problems
from ..data.benchmarks import gsm8k_items_and_shots
from ..runtime import pick_device, seed_everything
from ..stages import StageResult, TextPlan
from . import code as C
from . import harness as H
from .toy_benchmarks import fact_items

BENCHMARKS = ("gsm8k", "math", "mmlu", "humaneval", "mbpp", "mbpp_3shot", "mbpp_style", "toy_arith", "toy_facts")
# Test-set sizes (for the plan; nothing is downloaded to count them).
SIZES = {"gsm8k": 1319, "math": 500, "mmlu": 14042, "humaneval": 164, "mbpp": 500, "mbpp_3shot": 500,
         "mbpp_style": 20, "toy_arith": 60, "toy_facts": 60}
# Parameters of the hub models of Tables 1-2 (model cards), for the plan without a download.
KNOWN_PARAMS = {"meta-llama/Llama-3.2-1B": 1.24e9, "meta-llama/Llama-3.2-1B-Instruct": 1.24e9,
                "Qwen/Qwen2.5-1.5B": 1.54e9, "Qwen/Qwen2.5-1.5B-Instruct": 1.54e9,
                "InfiX-ai/InfiR-1B-Base": 1.24e9, "InfiX-ai/InfiR-1B-Instruct": 1.24e9}


@dataclass
class EvalConfig:
    """Everything an evaluation run depends on."""

    scale: Literal["toy", "full"] = "toy"
    seed: int = 0
    models: list[str] = field(default_factory=lambda: ["configs/toy/pretrain.yaml"])  # hub ids, folders, toy presets
    chat: Literal["auto", "yes", "no"] = "auto"
    benchmarks: list[str] = field(default_factory=lambda: ["toy_arith", "toy_facts", "humaneval", "mbpp_style"])
    limit: int = 0                      # items per benchmark (0 = all)
    # few-shot counts for base models (instruct models are zero-shot)
    gsm8k_shots: int = 4
    math_shots: int = 4
    mmlu_shots: int = 5
    toy_shots: int = 2
    # sources (hub ids need a network; GSM8K: the local shared copy, else the hub's openai/gsm8k)
    gsm8k_source: str | None = None
    math_source: str = "HuggingFaceH4/MATH-500"
    mmlu_source: str = "cais/mmlu"
    mbpp_source: str = "google-research-datasets/mbpp"
    # decoding and code execution
    n_samples: int = 1
    temperature: float = 0.0
    ks: list[int] = field(default_factory=lambda: [1])
    max_new_tokens: int = 512
    batch_size: int = 32
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = "auto"
    sandbox_workers: int = 2
    sandbox_timeout: float = 10.0
    output_dir: str | None = None
    # planning only
    n_gpus: int = 1
    gpu: str = "H100"
    assumed_tokens_per_s: float = 2000.0  # batched HF generation of a ~1B model on one GPU (an assumption)

    def __post_init__(self):
        bad = [b for b in self.benchmarks if b not in BENCHMARKS]
        if bad:
            raise ValueError(f"unknown benchmark(s) {bad}; known: {list(BENCHMARKS)}")
        if self.n_samples > 1 and self.temperature <= 0:
            raise ValueError("n_samples > 1 needs temperature > 0")
        if max(self.ks) > self.n_samples:
            raise ValueError(f"pass@{max(self.ks)} needs n_samples >= {max(self.ks)}")


@dataclass
class EvalResult(StageResult):
    config: EvalConfig
    scores: dict[str, dict[str, float]]          # model -> benchmark -> percentage
    details: dict[str, dict[str, dict]]          # model -> benchmark -> raw scorer output
    seconds: float

    @property
    def summary(self) -> dict:
        return {"scores": self.scores, "seconds": round(self.seconds, 1)}

    @property
    def output_dir(self) -> Path | None:
        return Path(self.config.output_dir) if self.config.output_dir else None  # scores.json; None: not kept

    @property
    def history(self) -> list:
        return []


def load(config, overrides=None) -> EvalConfig:
    """The config of a run: a preset path + overrides, or an EvalConfig (+ a dict of replacements)."""
    return stages.stage("eval").load(config, overrides)


def is_instruct(model: str, chat: str = "auto") -> bool:
    if chat != "auto":
        return chat == "yes"
    low = model.lower()
    return "instruct" in low or "chat" in low or "/sft" in low or low.endswith("sft.yaml")


# ---------------------------------------------------------------- models
def load_model_and_tokenizer(name: str, cfg: EvalConfig):
    """A toy preset (``configs/toy/pretrain.yaml``, ``configs/toy/sft.yaml``), a folder, or a hub id."""
    import torch

    if name.endswith((".yaml", ".yml")):  # a toy preset: the stage that makes it, through the runner (cached)
        path = str(resolve_path(name))
        res = stages.stage("sft" if "sft" in Path(path).name else "pretrain").run(path)
        model, tok = res.load_model(), res.load_tokenizer()
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        dtype = getattr(torch, cfg.dtype)
        tok = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
    device = pick_device(cfg.device)
    model.to(device)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


# ---------------------------------------------------------------- benchmark items
def _limit(items, n):
    return items[:n] if n else items


def _hub(source, *args, **kw):
    import datasets
    return datasets.load_dataset(source, *args, **kw)


def benchmark_items(bench: str, cfg: EvalConfig) -> tuple[list, list]:
    """(test items, few-shot pool) for one benchmark."""
    if bench == "gsm8k":  # the shots never come from the scored items (a single file gives both)
        return gsm8k_items_and_shots(cfg.gsm8k_source, cfg.gsm8k_shots, cfg.limit or None)
    if bench == "math":
        rows = [{"question": r["problem"], "final": r["answer"]} for r in _hub(cfg.math_source, split="test")]
        return _limit(rows, cfg.limit), []
    if bench == "mmlu":
        test, dev = _hub(cfg.mmlu_source, "all", split="test"), _hub(cfg.mmlu_source, "all", split="dev")
        conv = [{"question": r["question"], "choices": r["choices"], "answer": int(r["answer"]),
                 "subject": r["subject"].replace("_", " ")} for r in test]
        return _limit(conv, cfg.limit), [{"question": r["question"], "choices": r["choices"], "answer": int(r["answer"]),
                                          "subject": r["subject"]} for r in dev]
    if bench == "humaneval":
        return _limit(C.load_humaneval(), cfg.limit), []
    if bench in ("mbpp", "mbpp_3shot"):
        rows = [dict(r) for r in _hub(cfg.mbpp_source, "full", split="test")]
        shots = [dict(r) for r in _hub(cfg.mbpp_source, "full", split="prompt")][:3]
        return _limit(rows, cfg.limit), shots
    if bench == "mbpp_style":
        rows = C.load_mbpp_style()
        return _limit(rows[3:], cfg.limit), rows[:3]
    if bench == "toy_arith":
        n = cfg.limit or SIZES["toy_arith"]
        items = [{"question": p.question, "final": str(p.answer), "n_steps": p.n_steps}
                 for p in make_problems(n, seed=10_000 + cfg.seed)]
        shots = [(p.question, p.solution) for p in make_problems(cfg.toy_shots, seed=20_000 + cfg.seed)]
        return items, shots
    if bench == "toy_facts":
        items = [{"question": "Which sentence is true?", "choices": it["choices"], "answer": it["answer"]}
                 for it in fact_items(seed=cfg.seed)]
        return _limit(items[cfg.toy_shots:], cfg.limit), items[:cfg.toy_shots]
    raise ValueError(f"unknown benchmark {bench!r}")


def evaluate_model(model, tok, name: str, cfg: EvalConfig, benchmarks=None, progress: bool = False) -> tuple[dict, dict]:
    """Scores (percent) and raw outputs of one loaded model on ``benchmarks`` (default: the config's)."""
    instruct = is_instruct(name, cfg.chat)
    scores, details = {}, {}
    common = dict(batch_size=cfg.batch_size)
    code_kw = dict(n=cfg.n_samples, temperature=cfg.temperature, ks=cfg.ks, chat=instruct,
                   max_new_tokens=cfg.max_new_tokens, workers=cfg.sandbox_workers, timeout=cfg.sandbox_timeout, **common)
    for bench in benchmarks or cfg.benchmarks:
        items, pool = benchmark_items(bench, cfg)
        if bench in ("gsm8k", "math", "toy_arith"):
            shots = [] if instruct else ([(r["question"], r["answer"]) for r in pool] if bench == "gsm8k" else pool)
            res = H.eval_math(model, tok, items, shots=shots, chat=instruct, max_new_tokens=cfg.max_new_tokens,
                              a_prefix="Solution:" if bench == "toy_arith" else "Answer:", **common)
            scores[bench] = 100 * res["accuracy"]
        elif bench in ("mmlu", "toy_facts"):
            shots = [] if instruct else pool[:cfg.mmlu_shots if bench == "mmlu" else cfg.toy_shots]
            res = H.eval_multiple_choice(model, tok, items, shots=shots, chat=instruct, **common)
            scores[bench] = 100 * res["acc_probability"]
            scores[bench + " (generated letter)"] = 100 * res["acc_generated"]
        elif bench == "humaneval":
            res = H.eval_humaneval_model(model, tok, items, progress=progress, **code_kw)
            scores[bench] = 100 * res[f"pass@{cfg.ks[0]}"]
        else:  # mbpp, mbpp_3shot, mbpp_style
            shots = pool if (bench != "mbpp" and not instruct) else []
            res = H.eval_mbpp_model(model, tok, items, shots=shots, **code_kw)
            scores[bench] = 100 * res[f"pass@{cfg.ks[0]}"]
        details[bench] = res
    return scores, details


def run(config="configs/toy/eval.yaml", overrides=None) -> EvalResult:
    """Evaluate every model of the config on every benchmark; returns the score table (percent)."""
    cfg = load(config, overrides)
    seed_everything(cfg.seed)
    start = time.time()
    scores, details = {}, {}
    for name in cfg.models:
        model, tok = load_model_and_tokenizer(name, cfg)
        scores[name], details[name] = evaluate_model(model, tok, name, cfg)
        del model
    result = EvalResult(cfg, scores, details, time.time() - start)
    if cfg.output_dir:
        out = Path(cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "scores.json").write_text(json.dumps({"config": dataclasses.asdict(cfg), **result.summary}, indent=1))
    return result


def plan(config="configs/toy/eval.yaml", overrides=None) -> TextPlan:
    """What a run would do (models, protocol, items, generations, rough GPU time); builds and downloads nothing."""
    cfg = load(config, overrides)
    lines = [f"eval plan ({cfg.scale}): {len(cfg.models)} model(s) x {len(cfg.benchmarks)} benchmark(s)"]
    total_tokens = 0.0
    for name in cfg.models:
        instruct = is_instruct(name, cfg.chat)
        params = KNOWN_PARAMS.get(name)
        lines.append(f"- {name}: {'instruct, zero-shot (Table 2)' if instruct else 'base, few-shot (Table 1)'}"
                     + (f", {params / 1e9:.2f} B parameters" if params else ""))
        for bench in cfg.benchmarks:
            n = min(cfg.limit, SIZES[bench]) if cfg.limit else SIZES[bench]
            gens = n * (cfg.n_samples if bench in ("humaneval", "mbpp", "mbpp_3shot", "mbpp_style") else 1)
            shots = 0 if instruct else {"gsm8k": cfg.gsm8k_shots, "math": cfg.math_shots, "mmlu": cfg.mmlu_shots,
                                        "mbpp_3shot": 3, "mbpp_style": 3, "toy_arith": cfg.toy_shots,
                                        "toy_facts": cfg.toy_shots}.get(bench, 0)
            new = 4 if bench in ("mmlu", "toy_facts") else cfg.max_new_tokens
            total_tokens += gens * new
            lines.append(f"    {bench:<11} {n:>6} items, {gens:>6} generations, {shots}-shot, <= {new} new tokens each")
    hours = total_tokens / (cfg.assumed_tokens_per_s * max(1, cfg.n_gpus)) / 3600
    lines.append(f"upper bound on generated tokens: {total_tokens:,.0f}; at {cfg.assumed_tokens_per_s:.0f} tokens/s per "
                 f"{cfg.gpu} (assumed) on {cfg.n_gpus} GPU(s): <= {hours:.2f} h wall, {hours * cfg.n_gpus:.2f} GPU-hours")
    lines.append(f"code runs in the sandbox ({cfg.sandbox_workers} workers, {cfg.sandbox_timeout:g} s per program); "
                 f"dtype {cfg.dtype}, batch {cfg.batch_size}, temperature {cfg.temperature}, pass@{cfg.ks}")
    return TextPlan(lines)
