"""Seeding, device choice and the package versions every notebook prints first."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from .artifacts import cache_root
from .config import REPO_ROOT

KEY_PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "trl", "peft", "accelerate",
                "datasketch", "fasttext-numpy2", "datatrove", "math-verify", "numpy")


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; on CPU the toy runs are then bit-for-bit repeatable."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def pick_device(prefer: str = "auto") -> torch.device:
    """cuda, then mps, then cpu (``prefer`` may force one)."""
    if prefer != "auto":
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def versions(packages: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def print_versions() -> None:
    """What a notebook prints in its first cell, so a reader can compare their set-up with ours."""
    v = versions()
    device = pick_device()
    print(" | ".join(f"{k} {val}" for k, val in v.items()))
    print(f"device: {device}  threads: {torch.get_num_threads()}")


@contextmanager
def torch_threads(n: int):
    """Run with ``n`` intra-op threads (0: leave as is), then restore.

    A model of a million parameters is fastest on one thread, and on a shared 2-core machine two
    threads can be several times slower than one, so the toy presets pin it.
    """
    old = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def pad_batch(seqs: list[list[int]], pad_id: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> (ids, attention mask). Left padding for generation, right padding for scoring."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        span = slice(width - len(s), width) if left else slice(0, len(s))
        ids[i, span] = torch.as_tensor(s, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


# --------------------------------------------------------------------------- progress in notebooks

NOTEBOOK_WORKER = "INFIR_NOTEBOOK_WORKER"  # set in the workers of a notebook's run_parallel


def in_notebook() -> bool:
    """True inside a Jupyter kernel, where ``tqdm.auto`` would draw widgets whose state the saved notebook keeps,
    and in the worker processes a kernel starts (:func:`infir_lib.parallel.run_parallel`), whose output the
    kernel shows."""
    if os.environ.get(NOTEBOOK_WORKER) == "1":
        return True
    if "ipykernel" not in sys.modules:
        return False
    from IPython import get_ipython
    from ipykernel.zmqshell import ZMQInteractiveShell  # Jupyter, VS Code, Colab (a subclass)

    return isinstance(get_ipython(), ZMQInteractiveShell)


class LineSummary:
    """The part of tqdm's interface the library uses; prints one line when closed instead of a live bar.

    In a notebook a widget bar per run leaves hundreds of widget models (0.5-1 MB) in the executed
    file and a text bar leaves every redraw; one closing line ("pretrain: 80/80 steps in 12.3 s,
    loss=2.310") says the same thing.
    """

    def __init__(self, iterable=None, total=None, initial=0, desc=None, unit="it", disable=False, **_):
        self.iterable, self.total, self.n, self.desc, self.unit = iterable, total, initial, desc or "", unit
        self.disable, self.postfix, self._t0, self._closed = disable, {}, time.perf_counter(), False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n=1):
        self.n += n

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def set_description(self, desc=None, refresh=True):
        self.desc = desc or ""

    def refresh(self):
        pass

    def write(self, s, *args, **kwargs):
        print(s)

    def close(self):
        if self._closed or self.disable:
            self._closed = True
            return
        self._closed = True
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        unit = "" if self.unit == "it" else f" {self.unit}s"
        extra = ", ".join(f"{k}={v}" for k, v in self.postfix.items())
        print(f"{self.desc}: {done}{unit} in {time.perf_counter() - self._t0:.1f} s" + (f", {extra}" if extra else ""))


def progress_bar(*args, **kwargs):
    """``tqdm`` in a terminal (the command line, cluster logs); one summary line in a notebook."""
    if in_notebook():
        return LineSummary(*args, **kwargs)
    from tqdm.std import tqdm

    return tqdm(*args, **kwargs)


def compact_trainer_output(trainer, desc: str):
    """Replace transformers' log printers on a ``Trainer`` with one :func:`progress_bar`.

    With ``disable_tqdm=True`` transformers installs ``PrinterCallback``, which prints every log dict
    (``{'loss': ..., 'grad_norm': ...}``) and fills screens in a notebook; its ``ProgressCallback``
    prints them too. The logs still land in ``trainer.state.log_history``, which is what the library reads.
    """
    from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

    class CompactProgress(TrainerCallback):
        def __init__(self):
            self.bar = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.bar = progress_bar(total=state.max_steps, desc=desc, unit="step", dynamic_ncols=True)

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is not None and logs:
                shown = {k: f"{logs[k]:.3g}" for k in ("loss", "reward") if isinstance(logs.get(k), (int, float))}
                if shown:
                    self.bar.set_postfix(**shown)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(CompactProgress())
    return trainer


@contextmanager
def quiet_inner_progress():
    """Turn off the progress bars of datasets' ``map``/``filter`` and transformers' weight loading for a block
    (restored after): a training run shows one bar, not one per preprocessing pass."""
    import datasets
    from transformers.utils import logging as hf_logging

    ds_on = datasets.is_progress_bar_enabled()
    tf_on = hf_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if ds_on:
            datasets.enable_progress_bars()
        if tf_on:
            hf_logging.enable_progress_bar()


# --------------------------------------------------------------------------- notebook set-up

FIGURE_STYLE = {
    "figure.dpi": 150, "savefig.dpi": 150, "savefig.bbox": "tight",
    "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "xtick.labelsize": 10, "ytick.labelsize": 10,
    "legend.fontsize": 10, "legend.loc": "best", "legend.framealpha": 0.85,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
}


def figure_style() -> None:
    """The book's one figure style (dpi 150 inline and saved, larger fonts, legends placed off the data)."""
    import matplotlib
    import matplotlib.pyplot as plt  # noqa: F401  (activates the inline backend first, which sets its own rc)

    matplotlib.rcParams.update(FIGURE_STYLE)


def notebook_defaults() -> None:
    """What each chapter's set-up cell calls: the figure style, and in a notebook no per-file progress bars
    from datasets / transformers / the hub (each would leave a widget in the saved notebook; the library's
    own runs print one line each through :func:`progress_bar`)."""
    figure_style()
    ignore_upstream_deprecations()
    if in_notebook():
        import datasets
        from huggingface_hub.utils import disable_progress_bars as hub_quiet
        from transformers.utils import logging as hf_logging

        datasets.disable_progress_bars()
        hf_logging.disable_progress_bar()
        hub_quiet()


def display_path(path) -> str:
    """A path as the book prints it: relative to the artifact cache (``<cache>/pretrain/...``), the checkout or
    the temp folder, so an executed notebook shows no absolute path of the machine that ran it."""
    p = Path(path).resolve()
    for base, label in ((cache_root(), "<cache>"), (REPO_ROOT, "."), (Path(tempfile.gettempdir()), "<tmp>"),
                        (Path.home(), "~")):
        try:
            return f"{label}/{p.relative_to(Path(base).resolve()).as_posix()}"
        except ValueError:
            continue
    return str(path)


# =========================================================================== upstream workarounds
# Every place where infir_lib reaches into another library's private internals, or works around one of
# their behaviours, is here and nowhere else, each with what it works around (re-check on a pin change):
#
# - no_scratch_fill: torch's deterministic mode NaN-fills every fresh tensor (public torch flag
#   ``torch.utils.deterministic.fill_uninitialized_memory``), which makes TRL's log-prob scratch tiles slow.
# - logprob_tiles_fit_vocab: PRIVATE ``trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE`` (TRL 1.16), the fused
#   LM-head tile width, fixed at 32,768 columns; TRL keeps it unexposed on purpose (huggingface/trl#5575,
#   "I'd rather not" make the chunk size configurable), so the patch stays, scoped to one ``train()``.
# - make_accelerator: PRIVATE ``accelerate.state.AcceleratorState._shared_state`` / ``_reset_state``
#   (accelerate 1.15): a second ``Accelerator`` in one process with another mixed precision raises
#   "AcceleratorState has already been initialized and cannot be changed, restart your runtime".
# - save_state_without_tied_copies: accelerate's ``save_state`` does not drop tied weights (it warns
#   "Removed shared tensor" per checkpoint); transformers' ``remove_tied_weights_from_state_dict`` does.
# - UPSTREAM_DEPRECATIONS: PEFT 0.21 / TRL 1.16 read an attribute transformers 5.23 deprecated.
#
# Checked against the pinned versions: each is still needed (none has a public replacement yet).

@contextmanager
def no_scratch_fill():
    """Train without NaN-filling fresh tensors (``torch.utils.deterministic.fill_uninitialized_memory``).

    ``seed_everything`` turns on deterministic algorithms, and with them PyTorch fills every
    ``torch.empty`` with NaN, a guard against kernels that read memory they never wrote. TRL's
    chunked log-prob kernel allocates a [tokens x 32,768] scratch tile per call (sized for big
    vocabularies; ours has 4,096 entries) and writes it before reading it, so the fill changes no
    result, but on a CPU it costs about 0.2 s per call: most of a toy SFT or GRPO step. The
    deterministic algorithms themselves stay on (``tests/test_rl_grpo.py`` checks that a stage is
    still bit-for-bit repeatable).
    """
    import torch.utils.deterministic as det

    old = det.fill_uninitialized_memory
    det.fill_uninitialized_memory = False
    try:
        yield
    finally:
        det.fill_uninitialized_memory = old


@contextmanager
def logprob_tiles_fit_vocab(vocab_size: int):
    """Size TRL's fused LM-head tiles to the vocabulary instead of 32,768 columns (same numbers, less memory).

    ``SFTTrainer`` computes the loss with a chunked log-prob kernel whose scratch buffer is
    ``[tokens, 32768]`` floats, allocated twice per step whatever the vocabulary. For the toy model
    (vocabulary 1,377, about 1,500 tokens a batch) that is 200 MB touched per pass and about 40%
    of a toy run's CPU time spent in page faults. While the vocabulary fits in one tile, the tile
    width does not change the arithmetic (one tile covers all columns either way), so the loss and
    gradients are the same; only the buffer shrinks. Restored on exit.
    """
    from trl.trainer import utils as trl_utils

    old = trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE
    if vocab_size <= old:
        trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = max(256, -(-vocab_size // 256) * 256)
    try:
        yield trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE
    finally:
        trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = old


@contextmanager
def lean_trl_scratch(vocab_size: int):
    """Both of the above around a TRL ``trainer.train()``: the toy runs' numbers stay bit-identical."""
    with no_scratch_fill(), logprob_tiles_fit_vocab(vocab_size):
        yield


def make_accelerator(mixed_precision: str, cpu: bool, **kwargs):
    """An ``Accelerator`` with this run's mixed precision, also when an earlier run in the same process
    (a notebook kernel: an SFT trainer, then a bf16 pre-training run) left accelerate's global state set to
    another one; accelerate would refuse that. Under a distributed launch the state is never reset."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1
    if single and state and state.get("_mixed_precision") not in (None, mixed_precision):
        AcceleratorState._reset_state()
    return Accelerator(mixed_precision=mixed_precision, cpu=cpu, **kwargs)


def save_state_without_tied_copies(accelerator) -> None:
    """Make ``accelerator.save_state`` write a tied-weight model the way transformers 5 saves it.

    The toy Llama ties ``lm_head.weight`` to the embedding, so the state dict holds one tensor under two
    names; safetensors cannot store that, and accelerate drops the alias itself with a "Removed shared
    tensor" warning on every checkpoint. This pre-save hook drops the tied targets first with
    transformers' own ``remove_tied_weights_from_state_dict`` (what ``save_pretrained`` does), so the
    files are the same and nothing is printed; loading re-ties them (the resume test checks bit-equality).
    """
    from transformers.modeling_utils import remove_tied_weights_from_state_dict

    def hook(models, weights, _output_dir):
        for model, state_dict in zip(models, weights):
            inner = accelerator.unwrap_model(model)
            if getattr(inner, "all_tied_weights_keys", None):
                remove_tied_weights_from_state_dict(state_dict, inner)

    accelerator.register_save_state_pre_hook(hook)


# PEFT 0.21 (``PeftModel.__init__``) and TRL 1.16 (generation with an unwrapped policy) still read
# ``model.is_gradient_checkpointing``, which transformers 5.23 deprecated; nothing in infir_lib uses it.
UPSTREAM_DEPRECATIONS = (r"`is_gradient_checkpointing` is deprecated",)


def ignore_upstream_deprecations() -> None:
    """Hide only the deprecation warnings listed above, which the pinned libraries raise among themselves."""
    for message in UPSTREAM_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)
