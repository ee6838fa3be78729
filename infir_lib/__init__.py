"""infir_lib: the library behind the InfiR book.

The modules mirror the paper: ``data`` (§2.1), ``pretrain`` (§2.2-2.4), ``synth`` (§3.1),
``sft`` (§3.2), ``eval`` (§5), ``vlm`` (§4), ``rl`` (Infi-MMR, Curr-ReFT), ``report`` (the scorecard).
Each stage is ``run(config)`` at toy or full scale and ``plan(config)`` for a dry-run.
"""

__version__ = "0.1.0"
