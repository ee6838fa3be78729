"""Seeded image generators with ground truth: the toy stand-ins for the paper's vision data (§4.1-4.2).

Nothing can be downloaded here, so every image the chapter trains on is drawn with Pillow from a
seed, and every image carries the text the model should produce. Five families, one per kind of
data in InfiR's Table 9:

* ``make_scene``: captioned scenes (shapes, colours, counts, positions): captioning and general QA;
* ``make_text_image``: text rendering (a word, a code snippet, an arithmetic problem drawn as
  pixels): the paper's synthetic OCR data;
* ``make_gui_screen``: app screens with buttons and fields, boxes on the [0, 1000] scale, for
  grounding ("click the Save button"); :class:`GuiTaskEnv` chains screens into short multi-step tasks
  (a toy AndroidWorld: the screen changes after a correct click; success = the task is finished);
* ``make_chart`` / ``make_geometry``: bar charts and unit-square figures for visual math;
* ``mismatch_pairs``: a share of deliberately wrong captions, for the cleaning step (App. E).

Toy simplification (said in the chapter): each GUI label has its own colour, as app conventions
often do (a green Save, a red Cancel), so a 64-pixel model can find a button without reading it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30)}
SHAPES = ("circle", "square", "triangle")
POSITIONS = ("left", "middle", "right")
NUMBER_WORDS = {1: "one", 2: "two", 3: "three"}
WORDS = ["cat", "sun", "map", "box", "red", "pen", "cup", "dog", "hat", "key", "bus", "egg", "fig", "jam", "owl"]
SCALE = 1000  # the paper's normalised coordinate scale (InfiR §4.2.3)

# GUI labels and their (conventional) colours.
GUI_COLORS = {"Save": (40, 170, 60), "Cancel": (220, 40, 40), "Send": (40, 80, 220), "Mail": (240, 140, 20),
              "Camera": (140, 40, 180), "Settings": (20, 170, 190), "Wifi": (220, 40, 200), "Compose": (200, 190, 20),
              "Back": (130, 80, 30), "Photo": (20, 20, 20)}
GUI_LABELS = tuple(GUI_COLORS)
# Toy AndroidWorld: a task is the sequence of buttons to click, one per screen.
GUI_TASKS = {"send a mail": ["Mail", "Compose", "Send"], "turn on wifi": ["Settings", "Wifi", "Save"],
             "take a photo": ["Camera", "Photo", "Save"], "discard a mail": ["Mail", "Compose", "Cancel"]}


def font(size: int = 14) -> ImageFont.FreeTypeFont:
    """Pillow's bundled font (no font file needed, same pixels everywhere)."""
    return ImageFont.load_default(size=size)


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
    import re

    m = re.search(r"\(\s*(\d{1,4})\s*,\s*(\d{1,4})\s*\)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def inside(point: tuple[int, int] | None, box: tuple[int, int, int, int]) -> bool:
    """Click-in-box: the grounding metric of ScreenSpot."""
    return point is not None and box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


# --------------------------------------------------------------------------- scenes (captions, QA)

def _draw_shape(d: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, color) -> None:
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=color)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)


def make_scene(rng: random.Random, size: int = 64) -> VItem:
    """1-3 coloured shapes in left/middle/right slots; the caption names them left to right."""
    n = rng.randint(1, 3)
    slots = sorted(rng.sample(range(3), n))
    img = Image.new("RGB", (size, size), (245, 245, 245))
    d = ImageDraw.Draw(img)
    objs = []
    for s in slots:
        shape, color = rng.choice(SHAPES), rng.choice(list(COLORS))
        cx = size * (s + 0.5) / 3
        cy = size * rng.uniform(0.35, 0.65)
        _draw_shape(d, shape, cx, cy, size / 8, COLORS[color])
        objs.append({"shape": shape, "color": color, "position": POSITIONS[s]})
    caption = ", ".join(f"{o['color']} {o['shape']} {o['position']}" for o in objs) + "."
    return VItem(img, "Describe the image.", caption, "caption", {"objects": objs, "count": n})


def make_scene_qa(rng: random.Random, size: int = 64) -> VItem:
    """General QA on a scene: how many shapes."""
    item = make_scene(rng, size)
    return VItem(item.image, "How many shapes are there?", str(item.meta["count"]), "count", item.meta)


def mismatch_pairs(items: list[VItem], share: float, seed: int) -> list[VItem]:
    """Give a ``share`` of the items another item's caption (a known-bad pair, ``meta['mismatched']``).

    A swapped caption that happens to equal the item's own is not counted as a mismatch.
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

def make_text_image(rng: random.Random, size: int = 64, kind: str | None = None) -> VItem:
    """Text drawn into pixels: a word to read, a code line to read, or a sum to solve."""
    kind = kind or rng.choice(["word", "code", "math"])
    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    if kind == "word":
        text = rng.choice(WORDS)
        prompt, answer, task = "Read the text.", text, "ocr"
    elif kind == "code":
        text = f"{rng.choice('xyzab')}={rng.randint(1, 9)}"
        prompt, answer, task = "Read the text.", text, "ocr"
    else:
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        text = f"{a}+{b}"
        prompt, answer, task = "Solve the problem in the image.", str(a + b), "vmath"
    f = font(18)
    x0, y0, x1, y1 = d.textbbox((0, 0), text, font=f)
    x = rng.randint(2, max(2, size - (x1 - x0) - 2))
    y = rng.randint(2, max(2, size - (y1 - y0) - 6))
    d.text((x - x0, y - y0), text, fill=(0, 0, 0), font=f)
    return VItem(img, prompt, answer, task, {"text": text, "kind": kind})


# --------------------------------------------------------------------------- GUI screens

@dataclass
class GuiScreen:
    """An app screen: the image, its widgets and their boxes on the [0, 1000] scale."""

    image: Image.Image
    elements: list[dict]  # {"label", "kind": button|field|text, "box": (x0, y0, x1, y1) in [0, 1000]}
    title: str = ""

    def box_of(self, label: str) -> tuple[int, int, int, int]:
        for e in self.elements:
            if e["label"] == label and e["kind"] == "button":
                return tuple(e["box"])
        raise KeyError(f"no button {label!r} on this screen (buttons: {[e['label'] for e in self.elements]})")

    def buttons(self) -> list[str]:
        return [e["label"] for e in self.elements if e["kind"] == "button"]


def make_gui_screen(rng: random.Random, size: int = 64, buttons: list[str] | None = None, n_buttons: int = 3,
                    title: str = "App") -> GuiScreen:
    """A screen with a title bar, a text field and buttons on a 3x2 grid of slots (no overlaps).

    ``buttons`` fixes which labels appear (a task's next target among them); otherwise random ones.
    """
    labels = list(buttons) if buttons else rng.sample(GUI_LABELS, n_buttons)
    if len(labels) > 5:
        raise ValueError(f"at most 5 buttons fit on a toy screen, got {len(labels)}")
    img = Image.new("RGB", (size, size), (250, 250, 250))
    d = ImageDraw.Draw(img)
    bar = size // 8
    d.rectangle([0, 0, size, bar], fill=(90, 90, 90))
    d.text((2, 0), title[:10], fill=(255, 255, 255), font=font(max(6, bar - 1)))
    slots = [(c, r) for r in range(3) for c in range(2)]
    chosen = rng.sample(slots, len(labels) + 1)
    cell_w, cell_h = size / 2, (size - bar) / 3
    elements = []
    for i, (c, r) in enumerate(chosen):
        x0, y0 = c * cell_w + 2, bar + r * cell_h + 2
        x1, y1 = (c + 1) * cell_w - 2, bar + (r + 1) * cell_h - 2
        if i == len(labels):  # one text field as a distractor
            d.rectangle([x0, y0, x1, y1], fill=(255, 255, 255), outline=(150, 150, 150))
            elements.append({"label": "field", "kind": "field", "box": normalize_box((x0, y0, x1, y1), size, size)})
            continue
        label = labels[i]
        d.rectangle([x0, y0, x1, y1], fill=GUI_COLORS[label])
        d.text((x0 + 1, y0 + 1), label[:5], fill=(255, 255, 255), font=font(max(6, int(cell_h / 2))))
        elements.append({"label": label, "kind": "button", "box": normalize_box((x0, y0, x1, y1), size, size)})
    return GuiScreen(img, elements, title)


def make_grounding(rng: random.Random, size: int = 64) -> VItem:
    """'Click the Save button.' -> the centre of its box, as (x, y) on the [0, 1000] scale."""
    screen = make_gui_screen(rng, size)
    target = rng.choice(screen.buttons())
    box = screen.box_of(target)
    return VItem(screen.image, f"Click the {target} button.", format_click(*box_center(box)), "grounding",
                 {"box": box, "target": target, "elements": screen.elements})


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


def make_gui_task_step(rng: random.Random, size: int = 64) -> VItem:
    """One step of an expert trajectory: the screen at a random stage of a task and the right click."""
    task = rng.choice(sorted(GUI_TASKS))
    env = GuiTaskEnv(task, rng.randrange(1 << 30), size)
    for _ in range(rng.randrange(len(env.path))):
        env.step(box_center(env.target_box()))
    box = env.target_box()
    return VItem(env.screen.image, env.instruction(), format_click(*box_center(box)), "gui_task",
                 {"box": box, "task": task, "stage": env.stage, "target": env.path[env.stage]})


# --------------------------------------------------------------------------- charts and geometry

def make_chart(rng: random.Random, size: int = 64) -> VItem:
    """A bar chart with 2-4 bars of heights 1-9; asks for the tallest bar's value or the bar count."""
    n = rng.randint(2, 4)
    values = [rng.randint(1, 9) for _ in range(n)]
    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    base, unit = size - 4, (size - 10) / 9
    d.line([(2, base), (size - 2, base)], fill=(0, 0, 0))
    for i in range(1, 10):  # faint gridlines make heights readable
        y = base - i * unit
        d.line([(2, y), (size - 2, y)], fill=(225, 225, 225))
    w = (size - 8) / n
    for i, v in enumerate(values):
        x0 = 4 + i * w + w * 0.15
        d.rectangle([x0, base - v * unit, x0 + w * 0.7, base], fill=(60, 110, 200))
    if rng.random() < 0.5:
        return VItem(img, "What is the value of the tallest bar?", str(max(values)), "vmath",
                     {"values": values, "kind": "chart_max"})
    return VItem(img, "How many bars are in the chart?", str(n), "vmath", {"values": values, "kind": "chart_count"})


def make_geometry(rng: random.Random, size: int = 64) -> VItem:
    """An a x b rectangle of unit squares: its area (a*b) is the answer."""
    a, b = rng.randint(1, 4), rng.randint(1, 4)
    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    cell = (size - 8) / 4
    x0 = rng.uniform(2, size - 2 - a * cell)
    y0 = rng.uniform(2, size - 2 - b * cell)
    for i in range(a):
        for j in range(b):
            d.rectangle([x0 + i * cell, y0 + j * cell, x0 + (i + 1) * cell, y0 + (j + 1) * cell],
                        fill=(250, 220, 120), outline=(0, 0, 0))
    return VItem(img, "What is the area of the rectangle in unit squares?", str(a * b), "vmath",
                 {"a": a, "b": b, "kind": "area"})


def make_visual_math(rng: random.Random, size: int = 64) -> VItem:
    """Visual math: a chart, a unit-square figure or a rendered sum, with its answer."""
    kind = rng.choice(["chart", "geometry", "text"])
    if kind == "chart":
        return make_chart(rng, size)
    if kind == "geometry":
        return make_geometry(rng, size)
    return make_text_image(rng, size, kind="math")


def make_ocr(rng: random.Random, size: int = 64) -> VItem:
    return make_text_image(rng, size, kind=rng.choice(["word", "code"]))


GENERATORS = {"caption": make_scene, "count": make_scene_qa, "ocr": make_ocr, "grounding": make_grounding,
              "gui_task": make_gui_task_step, "vmath": make_visual_math}


def make_items(kind: str, n: int, seed: int, size: int = 64) -> list[VItem]:
    """``n`` seeded items of one family (see :data:`GENERATORS`)."""
    if kind not in GENERATORS:
        raise KeyError(f"unknown item kind {kind!r}; kinds: {sorted(GENERATORS)}")
    rng = random.Random(f"{kind}-{seed}")
    return [GENERATORS[kind](rng, size) for _ in range(n)]


def make_mix(mix: dict[str, int], seed: int, size: int = 64) -> list[VItem]:
    """Several families, ``{kind: count}``, shuffled together (seeded)."""
    items = []
    for kind, n in mix.items():
        items += make_items(kind, n, seed, size)
    random.Random(seed).shuffle(items)
    return items
