"""The book's figure geometry: one maximum width, and a panel grid that wraps instead of widening.

A figure wider than about 7 inches is shrunk on a phone until its 10-point ticks are a few pixels
tall; wrapping panels into rows keeps every figure at a width where the text stays readable.
"""

from __future__ import annotations

import math

import numpy as np

# Widest figure the book draws, in inches (at the style's 150 dpi about 1,050 pixels): shown on a
# 390-pixel-wide phone screen, the style's 10-point tick labels are still about 7 pixels tall.
FIGURE_MAX_WIDTH_IN = 7.0


def panels(n: int, *, panel: tuple[float, float] = (3.4, 2.6), max_width: float = FIGURE_MAX_WIDTH_IN,
           **subplot_kw):
    """``n`` axes of size ``panel`` (inches), as many per row as fit ``max_width``; extra cells hidden.

    Returns ``(fig, axes)`` with ``axes`` a flat array of length ``n`` (``sharex``/``sharey`` and other
    ``plt.subplots`` keywords pass through).
    """
    import matplotlib.pyplot as plt  # pyplot only when drawing: importing the constant stays cheap

    if n < 1:
        raise ValueError(f"panels needs at least one panel, got n={n}")
    width, height = panel
    if width > max_width:
        raise ValueError(f"a panel {width} in wide does not fit the book's {max_width} in figure width")
    cols = min(n, int(max_width // width))
    rows = math.ceil(n / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(cols * width, rows * height), squeeze=False, **subplot_kw)
    flat = grid.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, np.asarray(flat[:n])
