"""Chapter 0: the pipeline at a glance, toy vs full presets, and the compute planner vs the paper."""

from __future__ import annotations


import matplotlib.pyplot as plt
import yaml

from ..config import resolve_path
from .figures import FIGURE_MAX_WIDTH_IN
from ..planning import (GPU_PEAK_TFLOPS, PAPER_GPU_HOURS, PAPER_GPUS, PAPER_TOKENS, implied_mfu, implied_throughput,
                   plan_training)

# (stage, paper section, library module, chapter)
PIPELINE = [
    ("Pre-training data\nfilter · recall · dedup · decontaminate", "§2.1", "data", 1),
    ("Pre-training 900B\n+ annealing 40B tokens", "§2.2-2.4", "pretrain", 2),
    ("SFT data synthesis\nevolve · sample · reject", "§3.1", "synth", 3),
    ("Supervised fine-tuning\n+ long chain-of-thought", "§3.2", "sft", 4),
    ("Evaluation\nGSM8K · MATH · MMLU · HumanEval", "§5.1", "eval", 5),
    ("Vision-language model\nSigLIP + projector + LM", "§4", "vlm", 6),
    ("Curriculum RL\nInfi-MMR · Curr-ReFT", "follow-ups", "rl", 7),
]


def pipeline_figure():
    """The whole pipeline as boxes and arrows, each labelled with paper section and library module.

    Two columns (the language model, then the multimodal model and RL) so that it fits the book's
    figure width and stays legible on a phone.
    """
    colours = ["#4C72B0", "#4C72B0", "#55A868", "#55A868", "#8172B2", "#C44E52", "#C44E52"]
    # (column, row) of each box: the language-model stages run down the left column, the multimodal
    # stages continue on the right from the row of the last language-model stage
    places = [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 4), (1, 5)]
    box_w, box_h, col_x, row_h = 3.05, 0.78, (0.05, 3.6), 0.92
    fig, ax = plt.subplots(figsize=(FIGURE_MAX_WIDTH_IN, 6.0))
    ax.set_xlim(0, 6.7)
    ax.set_ylim(-0.25, 6 * row_h + 0.45)
    ax.invert_yaxis()
    ax.axis("off")

    def top_left(i):
        col, row = places[i]
        return col_x[col], 0.45 + row * row_h

    for i, (label, section, module, chapter) in enumerate(PIPELINE):
        x, y = top_left(i)
        ax.add_patch(plt.Rectangle((x, y), box_w, box_h, color=colours[i], alpha=0.9, lw=0))
        ax.text(x + box_w / 2, y + 0.28, label, ha="center", va="center", fontsize=9.5, color="white",
                linespacing=1.25)
        ax.text(x + box_w / 2, y + 0.64, f"ch. {chapter} · {section} · infir_lib.{module}", ha="center",
                va="center", fontsize=9, color="white", style="italic")
        if i < len(PIPELINE) - 1:
            nx, ny = top_left(i + 1)
            if nx == x:  # down the column
                start, end = (x + box_w / 2, y + box_h + 0.01), (x + box_w / 2, ny - 0.01)
            else:  # across to the next column
                start, end = (x + box_w + 0.01, y + box_h / 2), (nx - 0.01, ny + box_h / 2)
            ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", lw=1.4))
    ax.text(col_x[0], 0.2, "language model (InfiR-1B)", color="#4C72B0", fontsize=10.5, weight="bold")
    ax.text(col_x[1], 0.2 + 4 * row_h, "multimodal model\n(InfiR-VL-1.6B) and RL", color="#C44E52",
            fontsize=10.5, weight="bold", va="bottom")
    fig.tight_layout()
    return fig


def preset_table(stage: str = "pretrain", keys: tuple[str, ...] = (
        "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "seq_len", "global_batch_size",
        "max_steps", "total_tokens", "learning_rate", "n_gpus", "gpu")) -> list[dict]:
    """Rows ``{key, toy, full}`` comparing the two presets of a stage (read from configs/, not typed)."""
    toy = yaml.safe_load(resolve_path(f"configs/toy/{stage}.yaml").read_text())
    full = yaml.safe_load(resolve_path(f"configs/full/{stage}.yaml").read_text())
    return [{"key": k, "toy": toy.get(k, "(default)"), "full": full.get(k, "(default)")} for k in keys]


def paper_check(n_params: int, n_layers: int = 16, hidden: int = 2048, seq_len: int = 4096,
                gpu: str = "H800") -> dict:
    """What the paper's budget implies: tokens/s/GPU and MFU for 940 B tokens in 5,760 H800-hours."""
    tps = implied_throughput(PAPER_TOKENS, PAPER_GPU_HOURS)
    mfu = implied_mfu(tps, n_params, n_layers, seq_len, hidden, gpu)
    replan = plan_training(n_params=n_params, n_tokens=PAPER_TOKENS, global_batch=2048, seq_len=seq_len,
                           n_layers=n_layers, hidden=hidden, n_heads=32, n_gpus=PAPER_GPUS, micro_batch=4, gpu=gpu,
                           mfu=mfu)
    return {"tokens": PAPER_TOKENS, "gpu_hours": PAPER_GPU_HOURS, "gpus": PAPER_GPUS,
            "tokens_per_s_per_gpu": tps, "implied_mfu": mfu, "peak_tflops": GPU_PEAK_TFLOPS[gpu],
            "planner_gpu_hours_at_implied_mfu": replan.gpu_hours}


def planner_widget(n_params: int, n_layers: int = 16, hidden: int = 2048):
    """An ipywidget: move tokens, GPUs and MFU and watch GPU-hours and days change."""
    import ipywidgets as w
    from IPython.display import display

    tokens = w.FloatLogSlider(value=940e9, base=10, min=9, max=13, description="tokens")
    gpus = w.IntSlider(value=64, min=1, max=1024, step=1, description="GPUs")
    mfu = w.FloatSlider(value=0.35, min=0.05, max=0.7, step=0.01, description="MFU")
    gpu = w.Dropdown(options=[g for g in GPU_PEAK_TFLOPS if g != "cpu"], value="H800", description="GPU")
    out = w.Output()

    def update(*_):
        p = plan_training(n_params=n_params, n_tokens=tokens.value, global_batch=2048, seq_len=4096,
                          n_layers=n_layers, hidden=hidden, n_heads=32, n_gpus=1, micro_batch=4, gpu=gpu.value,
                          mfu=mfu.value)
        out.clear_output()
        with out:
            print(f"{p.gpu_hours:,.0f} GPU-hours -> {p.gpu_hours / gpus.value / 24:,.1f} days on {gpus.value} "
                  f"x {gpu.value}")

    for control in (tokens, gpus, mfu, gpu):
        control.observe(update, "value")
    update()
    box = w.VBox([tokens, gpus, mfu, gpu, out])
    display(box)
    return box

