"""Seeded image generators with ground truth: the toy stand-ins for the paper's vision data (§4.1-4.2).

Nothing can be downloaded here, so every image the chapter trains on is drawn with Pillow from a
seed, and every image carries the text the model should produce. The families are designed around
what the toy tower can *see*: a 64-pixel image cut into 16-pixel patches is a 4 x 4 grid of image
tokens, so every object sits in one grid cell (one patch), large enough to fill it. One family per
kind of data in InfiR's Table 9:

* ``make_scene``: captioned scenes (shapes and colours, one per cell): captioning and general QA;
* ``make_text_image``: digits drawn one per cell (a number to read, a sum to solve): the paper's
  synthetic OCR rendering;
* ``make_gui_screen``: app screens whose buttons fill grid cells, boxes on the [0, 1000] scale, for
  grounding ("click the Save button", scored click-in-box); :class:`GuiTaskEnv` chains screens into
  short multi-step tasks (a toy AndroidWorld: the screen changes after a correct click);
* ``make_chart`` / ``make_geometry``: bar charts (one bar per column, heights in half cells) and
  rectangles of unit cells, for visual math;
* ``mismatch_pairs``: a share of deliberately wrong captions, for the cleaning step (App. E).

Every item also records ``meta["cells"]``: the picture *in words*, one single-character word per grid
cell in patch order (row by row), e.g. ``"____" "_257" ...`` for a number, a letter per shape or button,
``#``/``=`` for a full/half bar cell (:data:`SHAPE_WORDS`, :data:`BUTTON_WORDS`, ...). The toy language model's
warm-up reads these 16 words where the 16 image tokens will be (:func:`cell_words`), so it learns to
answer *from the content at the image's place*; the projector then has to write that content from pixels.

Difficulty is a dial: every generator takes ``level`` (objects in a scene, digits to read, buttons
on a screen, the size of a chart or figure); ``None`` draws the level at random (the training mix).

Toy simplification (said in the chapter): each GUI label has its own colour, as app conventions
often do (a green Save, a red Cancel), so a 64-pixel model can find a button without reading it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

GRID = 4  # cells per image side: 64-pixel images, 16-pixel patches
COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30)}
SHAPES = ("circle", "square", "triangle")
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
SCALE = 1000  # the paper's normalised coordinate scale (InfiR §4.2.3)
# the difficulty levels of each family (``level=None`` draws one of them)
LEVELS = {"caption": (1, 2, 3), "count": (1, 2, 3, 4), "ocr": (1, 2, 3), "grounding": (2, 3, 4, 5),
          "gui_task": (1, 2, 3), "vmath": (1, 2, 3)}

# GUI labels and their (conventional) colours.
GUI_COLORS = {"Save": (40, 170, 60), "Cancel": (220, 40, 40), "Send": (40, 80, 220), "Mail": (240, 140, 20),
              "Camera": (140, 40, 180), "Settings": (20, 170, 190), "Wifi": (220, 40, 200), "Compose": (200, 190, 20),
              "Back": (130, 80, 30), "Photo": (20, 20, 20)}
GUI_LABELS = tuple(GUI_COLORS)
BUTTON_WORDS = {label: "mnopqrstuv"[i] for i, label in enumerate(GUI_LABELS)}
# Toy AndroidWorld: a task is the sequence of buttons to click, one per screen.
GUI_TASKS = {"send a mail": ["Mail", "Compose", "Send"], "turn on wifi": ["Settings", "Wifi", "Save"],
             "take a photo": ["Camera", "Photo", "Save"], "discard a mail": ["Mail", "Compose", "Cancel"]}


# The picture in words: one single-character word per grid cell (see the module docstring).
EMPTY = "_"
SHAPE_WORDS = {(c, s): "ABCDEFGHIJKL"[i * len(SHAPES) + j] for i, c in enumerate(COLORS) for j, s in enumerate(SHAPES)}
FIELD_WORD, TITLE_WORD = "w", "x"
BAR_WORDS = {1: "=", 2: "#"}  # half-cell and full-cell parts of a bar
UNIT_WORD = "*"  # a unit square of a rectangle


def blank_cells() -> list[str]:
    return [EMPTY] * (GRID * GRID)


def cell_words(item) -> str:
    """The 16 cell words of an item, in patch order (row by row): what its image shows, in words."""
    cells = item.meta.get("cells")
    if cells is None or len(cells) != GRID * GRID:
        raise ValueError(f"item of task {item.task!r} has no 16 cell words (meta['cells'])")
    return "".join(cells)


def font(size: int = 14) -> ImageFont.FreeTypeFont:
    """Pillow's bundled font (no font file needed, same pixels everywhere)."""
    return ImageFont.load_default(size=size)


def _level(rng: random.Random, kind: str, level: int | None) -> int:
    if level is None:
        return rng.choice(LEVELS[kind])
    if level not in LEVELS[kind]:
        raise ValueError(f"{kind}: level {level} is not one of {LEVELS[kind]}")
    return level


def cell_box(col: int, row: int, size: int, margin: float = 1) -> tuple[float, float, float, float]:
    """Pixel box of grid cell (col, row), ``margin`` pixels inside its edges."""
    c = size / GRID
    return (col * c + margin, row * c + margin, (col + 1) * c - margin, (row + 1) * c - margin)


@dataclass
class VItem:
    """One image-text example: the prompt the model sees with the image, and the answer it should give."""

    image: Image.Image
    prompt: str
    answer: str
    task: str
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- coordinates

def normalize_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1) -> integers on the [0, 1000] scale the paper standardises on."""
    x0, y0, x1, y1 = box
    if not (0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height):
        raise ValueError(f"box {box} is not inside a {width}x{height} image")
    return (round(x0 * SCALE / width), round(y0 * SCALE / height), round(x1 * SCALE / width), round(y1 * SCALE / height))


def denormalize_box(box: tuple[int, int, int, int], width: int, height: int) -> tuple[float, float, float, float]:
    """[0, 1000] box -> pixel box."""
    x0, y0, x1, y1 = box
    if not all(0 <= v <= SCALE for v in box):
        raise ValueError(f"normalised box {box} is outside [0, {SCALE}]")
    return (x0 * width / SCALE, y0 * height / SCALE, x1 * width / SCALE, y1 * height / SCALE)


def normalize_point(x: float, y: float, width: int, height: int) -> tuple[int, int]:
    return round(x * SCALE / width), round(y * SCALE / height)


def denormalize_point(x: int, y: int, width: int, height: int) -> tuple[float, float]:
    return x * width / SCALE, y * height / SCALE


def box_center(box: tuple[int, int, int, int]) -> tuple[int, int]:
    return (box[0] + box[2]) // 2, (box[1] + box[3]) // 2


def format_click(x: int, y: int) -> str:
    return f"({x}, {y})"


def parse_click(text: str) -> tuple[int, int] | None:
    """The first ``(x, y)`` in a model's answer, or None when there is none."""
    m = re.search(r"\(\s*(\d{1,4})\s*,\s*(\d{1,4})\s*\)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def inside(point: tuple[int, int] | None, box: tuple[int, int, int, int]) -> bool:
    """Click-in-box: the grounding metric of ScreenSpot."""
    return point is not None and box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


# --------------------------------------------------------------------------- scenes (captions, QA)

def _draw_shape(d: ImageDraw.ImageDraw, shape: str, box, color) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        d.ellipse([x0, y0, x1, y1], fill=color)
    elif shape == "square":
        d.rectangle([x0 + 1, y0 + 1, x1 - 1, y1 - 1], fill=color)
    else:
        d.polygon([((x0 + x1) / 2, y0), (x0, y1), (x1, y1)], fill=color)


def make_scene(rng: random.Random, size: int = 64, level: int | None = None) -> VItem:
    """``level`` coloured shapes, each filling one grid cell in its own column (random rows); the
    caption names them left to right ("red circle, blue square.")."""
    n = _level(rng, "caption", level)
    cols = sorted(rng.sample(range(GRID), n))
    img = Image.new("RGB", (size, size), (245, 245, 245))
    d = ImageDraw.Draw(img)
    objs = []
    for col in cols:
        row = rng.randrange(GRID)
        shape, color = rng.choice(SHAPES), rng.choice(list(COLORS))
        _draw_shape(d, shape, cell_box(col, row, size, margin=2), COLORS[color])
        objs.append({"shape": shape, "color": color, "col": col, "row": row})
    caption = ", ".join(f"{o['color']} {o['shape']}" for o in objs) + "."
    return VItem(img, "Describe the image.", caption, "caption",
                 {"objects": objs, "count": n, "level": n, "cells": _scene_cells(objs)})


def _scene_cells(objs: list[dict]) -> list[str]:
    cells = blank_cells()
    for o in objs:
        cells[o["row"] * GRID + o["col"]] = SHAPE_WORDS[(o["color"], o["shape"])]
    return cells


def make_scene_qa(rng: random.Random, size: int = 64, level: int | None = None) -> VItem:
    """General QA on a scene: how many shapes (``level`` of them, 1-4)."""
    n = _level(rng, "count", level)
    if n <= max(LEVELS["caption"]):
        item = make_scene(rng, size, n)
    else:  # four shapes: one per column
        img = Image.new("RGB", (size, size), (245, 245, 245))
        d = ImageDraw.Draw(img)
        objs = []
        for col in range(GRID):
            row, shape, color = rng.randrange(GRID), rng.choice(SHAPES), rng.choice(list(COLORS))
            _draw_shape(d, shape, cell_box(col, row, size, margin=2), COLORS[color])
            objs.append({"shape": shape, "color": color, "col": col, "row": row})
        item = VItem(img, "", "", "caption", {"objects": objs, "count": n, "level": n, "cells": _scene_cells(objs)})
    return VItem(item.image, "How many shapes are there?", str(n), "count", item.meta)


def mismatch_pairs(items: list[VItem], share: float, seed: int) -> list[VItem]:
    """Give a ``share`` of the items another item's caption (a known-bad pair, ``meta['mismatched']``).

    ``seed`` decides which pairs are swapped. A swapped caption that happens to equal the item's own is
    not counted as a mismatch.
    """
    rng = random.Random(seed)
    out = [VItem(it.image, it.prompt, it.answer, it.task, {**it.meta, "mismatched": False}) for it in items]
    idx = rng.sample(range(len(items)), int(round(share * len(items))))
    captions = [items[i].answer for i in idx]
    rng.shuffle(captions)
    for i, cap in zip(idx, captions[1:] + captions[:1]):
        if cap != items[i].answer:
            out[i].answer = cap
            out[i].meta["mismatched"] = True
    return out


# --------------------------------------------------------------------------- text rendering (OCR)

def _draw_char(d: ImageDraw.ImageDraw, ch: str, col: int, row: int, size: int) -> None:
    """One character, as large as a grid cell allows, centred in cell (col, row)."""
    f = font(round(size / GRID * 1.15))
    x0, y0, x1, y1 = d.textbbox((0, 0), ch, font=f)
    c = size / GRID
    d.text((col * c + (c - (x1 - x0)) / 2 - x0, row * c + (c - (y1 - y0)) / 2 - y0), ch, fill=(0, 0, 0), font=f)


def make_text_image(rng: random.Random, size: int = 64, kind: str | None = None, level: int | None = None) -> VItem:
    """Digits drawn one per grid cell on a row: a number to read (``level`` digits) or a sum to solve
    (``a+b`` in three cells; ``level`` bounds the operands: 1-3, 1-6, 1-9)."""
    kind = kind or rng.choice(["number", "math"])
    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    if kind == "number":
        n = _level(rng, "ocr", level)
        text = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(n - 1))
        prompt, answer, task = "Read the number.", text, "ocr"
    elif kind == "math":
        k = _level(rng, "vmath", level)
        a, b = rng.randint(1, 3 * k), rng.randint(1, 3 * k)
        text = f"{a}+{b}"
        prompt, answer, task = "Solve the problem in the image.", str(a + b), "vmath"
        n = k
    else:
        raise KeyError(f"unknown text kind {kind!r}; kinds: number, math")
    chars = list(text)  # one character per cell
    row, col0 = rng.randrange(GRID), rng.randint(0, GRID - len(chars))
    cells = blank_cells()
    for j, ch in enumerate(chars):
        _draw_char(d, ch, col0 + j, row, size)
        cells[row * GRID + col0 + j] = ch
    return VItem(img, prompt, answer, task,
                 {"text": text, "kind": kind, "level": n, "row": row, "col": col0, "cells": cells})


# --------------------------------------------------------------------------- GUI screens

@dataclass
class GuiScreen:
    """An app screen: the image, its widgets and their boxes on the [0, 1000] scale."""

    image: Image.Image
    elements: list[dict]  # {"label", "kind": button|field, "box": (x0, y0, x1, y1) in [0, 1000]}
    title: str = ""
    cells: list[str] | None = None  # the screen in words (title bar, field, one letter per button)

    def box_of(self, label: str) -> tuple[int, int, int, int]:
        for e in self.elements:
            if e["label"] == label and e["kind"] == "button":
                return tuple(e["box"])
        raise KeyError(f"no button {label!r} on this screen (buttons: {[e['label'] for e in self.elements]})")

    def buttons(self) -> list[str]:
        return [e["label"] for e in self.elements if e["kind"] == "button"]


def make_gui_screen(rng: random.Random, size: int = 64, buttons: list[str] | None = None, n_buttons: int = 3,
                    title: str = "App") -> GuiScreen:
    """A screen on the 4 x 4 grid: a title bar (the top row), one text field and buttons, each filling
    one cell of the three rows below (no overlaps).

    ``buttons`` fixes which labels appear (a task's next target among them); otherwise ``n_buttons``
    random ones.
    """
    labels = list(buttons) if buttons else rng.sample(GUI_LABELS, n_buttons)
    slots = [(c, r) for r in range(1, GRID) for c in range(GRID)]
    if len(labels) + 1 > len(slots):
        raise ValueError(f"at most {len(slots) - 1} buttons fit on a toy screen, got {len(labels)}")
    img = Image.new("RGB", (size, size), (250, 250, 250))
    d = ImageDraw.Draw(img)
    bar = size / GRID
    d.rectangle([0, 0, size, bar - 1], fill=(90, 90, 90))
    d.text((2, 1), title[:10], fill=(255, 255, 255), font=font(max(6, int(bar / 2))))
    chosen = rng.sample(slots, len(labels) + 1)
    elements = []
    cells = [TITLE_WORD] * GRID + [EMPTY] * (GRID * (GRID - 1))
    for i, (c, r) in enumerate(chosen):
        x0, y0, x1, y1 = cell_box(c, r, size, margin=1)
        if i == len(labels):  # one text field as a distractor
            d.rectangle([x0, y0, x1, y1], fill=(255, 255, 255), outline=(150, 150, 150))
            elements.append({"label": "field", "kind": "field", "box": normalize_box((x0, y0, x1, y1), size, size)})
            cells[r * GRID + c] = FIELD_WORD
            continue
        cells[r * GRID + c] = BUTTON_WORDS[labels[i]]
        label = labels[i]
        d.rectangle([x0, y0, x1, y1], fill=GUI_COLORS[label])
        d.text((x0 + 1, y0 + 1), label[:2], fill=(255, 255, 255), font=font(max(6, int(bar / 2.5))))
        elements.append({"label": label, "kind": "button", "box": normalize_box((x0, y0, x1, y1), size, size),
                         "cell": (c, r)})
    return GuiScreen(img, elements, title, cells)


def make_grounding(rng: random.Random, size: int = 64, level: int | None = None) -> VItem:
    """'Click the Save button.' on a screen of ``level`` buttons -> the centre of its box, as (x, y) on
    the [0, 1000] scale."""
    n = _level(rng, "grounding", level)
    screen = make_gui_screen(rng, size, n_buttons=n)
    target = rng.choice(screen.buttons())
    box = screen.box_of(target)
    return VItem(screen.image, f"Click the {target} button.", format_click(*box_center(box)), "grounding",
                 {"box": box, "target": target, "elements": screen.elements, "level": n, "cells": screen.cells})


class GuiTaskEnv:
    """A toy AndroidWorld episode: each correct click opens the next screen; success = path finished.

    A click on a wrong place leaves the screen as it is (one step used); ``max_steps`` bounds an episode.
    """

    def __init__(self, task: str, seed: int, size: int = 64, n_distractors: int = 2, slack: int = 1):
        if task not in GUI_TASKS:
            raise KeyError(f"unknown GUI task {task!r}; tasks: {sorted(GUI_TASKS)}")
        self.task, self.path, self.size = task, GUI_TASKS[task], size
        self.rng = random.Random(seed)
        self.n_distractors = n_distractors
        self.max_steps = len(self.path) + slack
        self.stage, self.steps, self.done, self.success = 0, 0, False, False
        self._screen = self._new_screen()

    def _new_screen(self) -> GuiScreen:
        target = self.path[self.stage]
        others = [label for label in GUI_LABELS if label != target]
        labels = [target] + self.rng.sample(others, self.n_distractors)
        self.rng.shuffle(labels)
        return make_gui_screen(self.rng, self.size, labels, title=f"{self.task.split()[-1]} {self.stage + 1}")

    @property
    def screen(self) -> GuiScreen:
        return self._screen

    def instruction(self) -> str:
        return f"Task: {self.task}. Next click?"

    def target_box(self) -> tuple[int, int, int, int]:
        return self._screen.box_of(self.path[self.stage])

    def step(self, point: tuple[int, int] | None) -> bool:
        """Apply a click; returns whether the episode is over."""
        if self.done:
            raise RuntimeError("episode is over; make a new GuiTaskEnv")
        self.steps += 1
        if inside(point, self.target_box()):
            self.stage += 1
            if self.stage == len(self.path):
                self.done, self.success = True, True
                return True
            self._screen = self._new_screen()
        if self.steps >= self.max_steps:
            self.done = True
        return self.done


def make_gui_task_step(rng: random.Random, size: int = 64, level: int | None = None) -> VItem:
    """One step of an expert trajectory: the screen at a random stage of a task (``level`` distractor
    buttons) and the right click."""
    n = _level(rng, "gui_task", level)
    task = rng.choice(sorted(GUI_TASKS))
    env = GuiTaskEnv(task, rng.randrange(1 << 30), size, n_distractors=n)
    for _ in range(rng.randrange(len(env.path))):
        env.step(box_center(env.target_box()))
    box = env.target_box()
    return VItem(env.screen.image, env.instruction(), format_click(*box_center(box)), "gui_task",
                 {"box": box, "task": task, "stage": env.stage, "target": env.path[env.stage], "level": n,
                  "cells": env.screen.cells})


# --------------------------------------------------------------------------- charts and geometry

def make_chart(rng: random.Random, size: int = 64, level: int | None = None) -> VItem:
    """A bar chart of ``level + 1`` bars (2-4), one per grid column, heights 1-8 in half cells; asks for
    the tallest bar's value or the bar count."""
    k = _level(rng, "vmath", level)
    n = k + 1
    values = [rng.randint(1, 8) for _ in range(n)]
    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    unit = size / 8
    for i in range(1, 8):  # faint gridlines every half cell make heights readable
        d.line([(0, size - i * unit), (size, size - i * unit)], fill=(225, 225, 225))
    cells = blank_cells()
    for i, v in enumerate(values):
        x0, _, x1, _ = cell_box(i, 0, size, margin=2)
        d.rectangle([x0, size - v * unit, x1, size - 1], fill=(60, 110, 200))
        for b in range(GRID):  # b-th cell from the bottom: how many of its two halves the bar covers
            halves = min(2, max(0, v - 2 * b))
            if halves:
                cells[(GRID - 1 - b) * GRID + i] = BAR_WORDS[halves]
    if rng.random() < 0.5:
        return VItem(img, "What is the value of the tallest bar?", str(max(values)), "vmath",
                     {"values": values, "kind": "chart_max", "level": k, "cells": cells})
    return VItem(img, "How many bars are in the chart?", str(n), "vmath",
                 {"values": values, "kind": "chart_count", "level": k, "cells": cells})


def make_geometry(rng: random.Random, size: int = 64, level: int | None = None) -> VItem:
    """An a x b rectangle of unit squares, each square one grid cell (a, b <= level + 1): its area (a*b)."""
    k = _level(rng, "vmath", level)
    a, b = rng.randint(1, k + 1), rng.randint(1, k + 1)
    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    c0, r0 = rng.randint(0, GRID - a), rng.randint(0, GRID - b)
    cells = blank_cells()
    for i in range(a):
        for j in range(b):
            x0, y0, x1, y1 = cell_box(c0 + i, r0 + j, size, margin=0)
            d.rectangle([x0, y0, x1 - 1, y1 - 1], fill=(250, 220, 120), outline=(0, 0, 0))
            cells[(r0 + j) * GRID + c0 + i] = UNIT_WORD
    return VItem(img, "What is the area of the rectangle in unit squares?", str(a * b), "vmath",
                 {"a": a, "b": b, "kind": "area", "level": k, "cells": cells})


def make_visual_math(rng: random.Random, size: int = 64, level: int | None = None) -> VItem:
    """Visual math: a chart, a unit-square figure or a rendered sum, with its answer."""
    kind = rng.choice(["chart", "geometry", "text"])
    if kind == "chart":
        return make_chart(rng, size, level)
    if kind == "geometry":
        return make_geometry(rng, size, level)
    return make_text_image(rng, size, kind="math", level=level)


def make_ocr(rng: random.Random, size: int = 64, level: int | None = None) -> VItem:
    return make_text_image(rng, size, kind="number", level=level)


GENERATORS = {"caption": make_scene, "count": make_scene_qa, "ocr": make_ocr, "grounding": make_grounding,
              "gui_task": make_gui_task_step, "vmath": make_visual_math}


def make_items(kind: str, n: int, seed: int, size: int = 64, level: int | None = None) -> list[VItem]:
    """``n`` seeded items of one family (see :data:`GENERATORS`), at difficulty ``level`` (None: mixed)."""
    if kind not in GENERATORS:
        raise KeyError(f"unknown item kind {kind!r}; kinds: {sorted(GENERATORS)}")
    rng = random.Random(f"{kind}-{seed}" if level is None else f"{kind}-{seed}-level{level}")
    return [GENERATORS[kind](rng, size, level=level) for _ in range(n)]


def make_mix(mix: dict[str, int], seed: int, size: int = 64) -> list[VItem]:
    """Several families, ``{kind: count}``, shuffled together (seeded)."""
    items = []
    for kind, n in mix.items():
        items += make_items(kind, n, seed, size)
    random.Random(seed).shuffle(items)
    return items
