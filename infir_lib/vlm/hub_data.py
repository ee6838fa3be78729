"""Full-scale VLM data: InfiR Table 9 datasets by hub id or local path, normalised to one schema.

A dataset entry in a config is a dataset id (:mod:`infir_lib.dataset_ids`, ``SOURCE[:PART][@SPLIT]``, the
syntax the RL presets use too): a hub id (streamed, nothing is downloaded up front) or a local folder (parquet / jsonl / an imagefolder, or a ``save_to_disk`` folder), e.g.
``HuggingFaceM4/the_cauldron:textcaps@train`` or ``/data/screens@test``. ``datasets`` reads it; a small
adapter per format turns each row into a :class:`Conversation` (one image, user/assistant turns).

Adapters, chosen from the columns a dataset has (the first that fits wins):

=============  =====================================================  ==========================================
format         columns                                                 examples from Table 9
=============  =====================================================  ==========================================
``cauldron``   ``images`` (list) + ``texts`` [{user, assistant}]      the_cauldron subsets: TextCaps, VQAv2,
                                                                       OCR-VQA, TextVQA, DocVQA, ChartQA, AI2D...
``llava``      image + ``conversations`` [{from, value}] or            LLaVA/ShareGPT-style sets (ShareGPT-4o,
               ``messages`` [{role, content}]                          ALLaVA, ...) exported with their images
``grounding``  image + ``instruction`` + ``bbox`` (x0, y0, x1, y1)     ScreenSpot / SeeClick-style GUI grounding
``qa``         image + question|query + answer|answers|label|          VQAv2, TextVQA, DocVQA, ChartQA,
               multiple_choice_answer                                  MathVista (``decoded_image``)
``caption``    image + caption|caption_str|text                        TextCaps, COCO captions
=============  =====================================================  ==========================================

Anything else raises :class:`UnsupportedDataset` naming the dataset and the columns it found. Rows
the adapter cannot use (several images, an empty answer, an unreadable image) are skipped and counted.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from PIL import Image

from ..dataset_ids import DatasetId, Skip, parse_dataset_id, to_image  # noqa: F401  (re-exported)
from .config import CurriculumStage
from .data import SCALE, format_click, make_items, mismatch_pairs

IMAGE_COLUMNS = ("image", "images", "decoded_image", "img")
QUESTION_COLUMNS = ("question", "query", "prompt")
ANSWER_COLUMNS = ("answer", "answers", "label", "multiple_choice_answer")
CAPTION_COLUMNS = ("caption", "caption_str", "text", "captions")
CAPTION_PROMPT = "Describe the image briefly."
FORMATS = ("cauldron", "llava", "grounding", "qa", "caption")
FAIL_AFTER = 200  # a dataset whose first rows are all unusable (images as paths into a zip, say) stops the run


class UnsupportedDataset(ValueError):
    """A dataset whose columns match no adapter (the message names it and lists its columns)."""


@dataclass
class Conversation:
    """One training row: an image and one or more (user, assistant) turns; the image goes with the first."""

    image: Image.Image
    turns: list[tuple[str, str]]
    source: str = ""


# --------------------------------------------------------------------------- loading

def read_dataset(spec: DatasetId, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle_buffer: int = 1000):
    """The dataset as an iterable of row dicts: a local folder is read (memory-mapped), a hub id is
    streamed; both are shuffled (seeded) and split between the ``world_size`` processes."""
    from datasets import DatasetDict, load_dataset, load_from_disk  # heavy: datasets
    from datasets.distributed import split_dataset_by_node  # heavy: datasets

    if spec.local:
        folder = Path(spec.path)
        if (folder / "dataset_info.json").exists() or (folder / "dataset_dict.json").exists():
            ds = load_from_disk(str(folder))
            if isinstance(ds, DatasetDict):
                if spec.split not in ds:
                    raise ValueError(f"dataset {spec}: no split {spec.split!r}; splits: {sorted(ds)}")
                ds = ds[spec.split]
        else:
            ds = load_dataset(str(folder), spec.name, split=spec.split)
        ds = ds.shuffle(seed=seed)
    else:
        ds = load_dataset(**spec.load_kwargs(), streaming=True)
        ds = ds.shuffle(seed=seed, buffer_size=shuffle_buffer)
    if world_size > 1:
        ds = split_dataset_by_node(ds, rank=rank, world_size=world_size)
    return ds


# --------------------------------------------------------------------------- adapters

def _first(row: dict, names) -> str | None:
    return next((n for n in names if n in row), None)


def _text(value) -> str:
    """An answer field as one string: a list of answers -> the most common; {answer: ...} dicts unwrapped."""
    if isinstance(value, dict):
        value = value.get("answer", value.get("text", ""))
    if isinstance(value, (list, tuple)):
        vals = [_text(v) for v in value if _text(v)]
        return Counter(vals).most_common(1)[0][0] if vals else ""
    return "" if value is None else str(value).strip()


def _strip_image_tag(text: str) -> str:
    return text.replace("<image>", "").strip()


def detect_format(columns: list[str], name: str = "") -> str:
    """Which adapter reads a dataset with these columns; :class:`UnsupportedDataset` otherwise."""
    cols = set(columns)
    has_image = any(c in cols for c in IMAGE_COLUMNS)
    if {"images", "texts"} <= cols:
        return "cauldron"
    if not has_image:
        raise UnsupportedDataset(f"dataset {name}: no image column (looked for {list(IMAGE_COLUMNS)}); columns "
                                 f"found: {sorted(cols)}. Supported formats: {', '.join(FORMATS)} "
                                 f"(see infir_lib/vlm/hub_data.py)")
    if cols & {"conversations", "messages"}:
        return "llava"
    if {"instruction", "bbox"} <= cols:
        return "grounding"
    if cols & set(QUESTION_COLUMNS) and cols & set(ANSWER_COLUMNS):
        return "qa"
    if cols & set(CAPTION_COLUMNS):
        return "caption"
    raise UnsupportedDataset(f"dataset {name}: columns {sorted(cols)} match no adapter. Supported formats: "
                             f"cauldron (images + texts), llava (image + conversations|messages), grounding "
                             f"(image + instruction + bbox), qa (image + {'|'.join(QUESTION_COLUMNS)} + "
                             f"{'|'.join(ANSWER_COLUMNS)}), caption (image + {'|'.join(CAPTION_COLUMNS)})")


def adapt(row: dict, fmt: str, root: Path | None = None, source: str = "") -> Conversation:
    """One dataset row -> a :class:`Conversation` (raises :class:`Skip` with a reason)."""
    img_col = _first(row, IMAGE_COLUMNS)
    value = row.get(img_col) if img_col else None
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise Skip("multi_image" if value else "no_image")
        value = value[0]
    if value is None:
        raise Skip("no_image")
    try:
        image = to_image(value, root)
    except Skip:
        raise Skip("no_image") from None
    except Exception as e:  # noqa: BLE001 - a broken image is a skipped row, counted
        raise Skip(f"bad_image:{type(e).__name__}")
    if fmt == "cauldron":
        turns = [(_strip_image_tag(t["user"]), str(t["assistant"]).strip()) for t in row["texts"]]
    elif fmt == "llava":
        msgs = row.get("conversations") or row.get("messages") or []
        role = lambda m: (m.get("from") or m.get("role") or "").lower()
        content = lambda m: m.get("value") if "value" in m else m.get("content")
        turns, user = [], None
        for m in msgs:
            text = content(m)
            if isinstance(text, list):  # [{"type": "text", "text": ...}, {"type": "image"}]
                text = " ".join(p.get("text", "") for p in text if p.get("type") == "text")
            if role(m) in ("human", "user"):
                user = _strip_image_tag(text or "")
            elif role(m) in ("gpt", "assistant") and user is not None:
                turns.append((user, (text or "").strip()))
                user = None
    elif fmt == "grounding":
        turns = [(f"{row['instruction'].strip()} Answer with the click point (x, y) on the 0-{SCALE} scale.",
                  _click(row["bbox"], image.size))]
    elif fmt == "qa":
        q = row[_first(row, QUESTION_COLUMNS)]
        turns = [(_strip_image_tag(str(q)), _text(row[_first(row, ANSWER_COLUMNS)]))]
    elif fmt == "caption":
        turns = [(CAPTION_PROMPT, _text(row[_first(row, CAPTION_COLUMNS)]))]
    else:
        raise ValueError(f"unknown format {fmt!r}; formats: {FORMATS}")
    turns = [(u, a) for u, a in turns if a]
    if not turns:
        raise Skip("empty_answer")
    return Conversation(image, turns, source)


def _click(bbox, size: tuple[int, int]) -> str:
    """The centre of an (x0, y0, x1, y1) box as "(x, y)" on the [0, 1000] scale; boxes with every
    coordinate <= 1 are taken as relative, others as pixels of the image."""
    x0, y0, x1, y1 = (float(v) for v in bbox[:4])
    w, h = (1.0, 1.0) if max(x0, y0, x1, y1) <= 1.0 else (float(size[0]), float(size[1]))
    cx, cy = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h
    return format_click(round(min(max(cx, 0.0), 1.0) * SCALE), round(min(max(cy, 0.0), 1.0) * SCALE))


# --------------------------------------------------------------------------- streams

@dataclass
class SourceStats:
    read: int = 0
    used: int = 0
    skipped: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {"read": self.read, "used": self.used, "skipped": dict(self.skipped)}


class DatasetStream:
    """Endless conversations from one dataset (re-opened, reshuffled, when a pass ends)."""

    def __init__(self, text: str, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle_buffer: int = 1000):
        self.spec = parse_dataset_id(text)
        self.seed, self.rank, self.world_size, self.shuffle_buffer = seed, rank, world_size, shuffle_buffer
        self.stats = SourceStats()
        self.root = Path(self.spec.path) if self.spec.local else None
        self._epoch = 0
        self._it = self._open()
        first = next(self._it, None)
        if first is None:
            raise ValueError(f"dataset {self.spec} is empty")
        self.format = detect_format(list(first), str(self.spec))
        self._pending = [first]

    def _open(self) -> Iterator[dict]:
        return iter(read_dataset(self.spec, self.seed + self._epoch, self.rank, self.world_size, self.shuffle_buffer))

    def __iter__(self):
        return self

    def __next__(self) -> Conversation:
        while True:
            row = self._pending.pop() if self._pending else next(self._it, None)
            if row is None:  # a pass is over: reshuffle and go again (unless nothing in it was usable)
                if self.stats.used == 0:
                    raise ValueError(f"dataset {self.spec}: no usable row (skipped: {dict(self.stats.skipped)})")
                self._epoch += 1
                self._it = self._open()
                continue
            self.stats.read += 1
            try:
                conv = adapt(row, self.format, self.root, str(self.spec))
            except Skip as s:
                self.stats.skipped[str(s)] += 1
                if self.stats.used == 0 and self.stats.read >= FAIL_AFTER:
                    raise ValueError(f"dataset {self.spec} ({self.format} format): the first {self.stats.read} rows "
                                     f"were all unusable: {dict(self.stats.skipped)}") from None
                continue
            self.stats.used += 1
            return conv


def mix(streams: list, seed: int, weights: list[float] | None = None) -> Iterator[Conversation]:
    """Draw from several streams (uniformly, or by ``weights``), seeded."""
    rng = random.Random(seed)
    weights = weights or [1.0] * len(streams)
    while True:
        yield next(rng.choices(streams, weights)[0])


# --------------------------------------------------------------------------- tokenising

IGNORE = -100


class ConversationCollator:
    """Conversations -> a right-padded batch: the chat template renders the turns (the first user turn
    carries the image), ``<image>`` becomes one placeholder per patch, labels cover the assistant turns
    only (the prompt is masked, as InfiR's SFT does), and sequences are cut at ``max_len``."""

    def __init__(self, processor, max_len: int):
        self.processor = processor
        self.tok = processor.tokenizer
        size = processor.image_processor.size
        self.n_image_tokens = (size["height"] // processor.patch_size) * (size["width"] // processor.patch_size)
        self.max_len = max_len
        if self.n_image_tokens + 8 > max_len:
            raise ValueError(f"seq_len={max_len} leaves no room for text after {self.n_image_tokens} image tokens")

    def _render(self, messages, generation: bool) -> str:
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)

    def encode(self, conv: Conversation) -> tuple[list[int], list[int]]:
        """Token ids and labels of one conversation (segments split where the template adds a turn)."""
        ids, labels, messages, done = [], [], [], ""
        for i, (user, answer) in enumerate(conv.turns):
            content = ([{"type": "image"}] if i == 0 else []) + [{"type": "text", "text": user}]
            messages.append({"role": "user", "content": content})
            prompt = self._render(messages, True)
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
            full = self._render(messages, False)
            if not (prompt.startswith(done) and full.startswith(prompt)):
                raise ValueError("the chat template does not render turns as a growing prefix; cannot mask prompts")
            p = self.tok(prompt[len(done):].replace("<image>", "<image>" * self.n_image_tokens),
                         add_special_tokens=False)["input_ids"]
            a = self.tok(full[len(prompt):], add_special_tokens=False)["input_ids"]
            ids += p + a
            labels += [IGNORE] * len(p) + a
            done = full
        return ids[: self.max_len], labels[: self.max_len]

    def __call__(self, convs: list[Conversation]) -> dict:
        import torch  # heavy: torch (the data CLI, main(), needs none)

        enc = [self.encode(c) for c in convs]
        width = max(len(i) for i, _ in enc)
        pad = self.tok.pad_token_id
        ids = torch.full((len(enc), width), pad, dtype=torch.long)
        labels = torch.full((len(enc), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for r, (i, l) in enumerate(enc):
            ids[r, : len(i)] = torch.tensor(i)
            labels[r, : len(l)] = torch.tensor(l)
            mask[r, : len(i)] = 1
        pix = self.processor.image_processor([c.image for c in convs], return_tensors="pt")["pixel_values"]
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "pixel_values": pix}


def batches(rows: Iterator[Conversation], collate: ConversationCollator, micro_batch: int, device=None):
    """Endless micro-batches (tensors moved to ``device``)."""
    while True:
        batch = collate([next(rows) for _ in range(micro_batch)])
        yield {k: v.to(device) for k, v in batch.items()} if device is not None else batch


# --------------------------------------------------------------------------- the data part of a full run

def stage_stream(cfg, name: str, rank: int, world: int, cleaner, counts: dict) -> Iterator[Conversation]:
    """The conversation stream of one stage: its datasets mixed uniformly; stage 1 cleaned by ``cleaner``
    (when given); stage 2 with a ``stage2_replay`` share of (cleaned) stage-1 rows. ``counts`` receives each
    source's :class:`SourceStats` and the cleaning counts."""

    def streams(key: str, seed: int):
        entries = getattr(cfg, key)
        if not entries:
            raise ValueError(f"{key} is empty: list the stage's datasets (hub ids or local folders)")
        return [DatasetStream(e, seed, rank, world, cfg.shuffle_buffer) for e in entries]

    def stage1(seed: int):
        src = streams("stage1_datasets", seed)
        counts["sources"].update({str(s.spec): s.stats for s in src})
        rows = mix(src, seed)
        if cfg.clean and cleaner is not None:
            rows = cleaner(rows)
            counts["cleaning"] = rows.counts
        return rows

    if name == "stage1":
        return stage1(cfg.seed)
    own = streams(f"{name}_datasets", cfg.seed + int(name[-1]))
    counts["sources"].update({str(s.spec): s.stats for s in own})
    rows = mix(own, cfg.seed + 10 + int(name[-1]))
    if name == "stage2" and cfg.stage2_replay > 0:
        replay = stage1(cfg.seed + 100)
        return mix([rows, replay], cfg.seed + 20, [1 - cfg.stage2_replay, cfg.stage2_replay])
    return rows


class HubData:
    """The full data part: the three stages of ``stage{1,2,3}_datasets`` (:func:`stage_stream`), each
    ``steps[i]`` optimizer steps at ``stage{i}_lr``, in micro-batches of the :class:`ConversationCollator`
    (``seq_len`` tokens at most). ``cleaner`` (rows -> a stream with ``.counts``, e.g.
    :class:`infir_lib.vlm.hub_model.CleanedStream`) cleans stage 1; ``cleaning_note`` says why there is none."""

    def __init__(self, cfg, processor, steps: list[int], rank: int = 0, world: int = 1, cleaner=None,
                 cleaning_note: str | None = None):
        if cfg.schedule != "curriculum":
            raise ValueError("the full path runs the curriculum (schedule=curriculum); end_to_end is a toy comparison")
        self.cfg, self.steps, self.rank, self.world = cfg, steps, rank, world
        self.cleaner, self.cleaning_note = cleaner, cleaning_note
        self.collate = ConversationCollator(processor, cfg.seq_len)
        self._counts: dict[str, dict] = {}

    def stages(self) -> list[CurriculumStage]:
        return [CurriculumStage(name, name, n, getattr(self.cfg, f"{name}_lr"))
                for name, n in zip(("stage1", "stage2", "stage3"), self.steps)]

    def batches(self, stage: CurriculumStage, device=None):
        counts = self._counts[stage.name] = {"sources": {}}
        rows = stage_stream(self.cfg, stage.name, self.rank, self.world, self.cleaner, counts)
        return batches(rows, self.collate, self.cfg.micro_batch_size, device)

    def record(self, stage: CurriculumStage, history: list[dict]) -> dict:
        counts = self._counts.get(stage.name, {"sources": {}})
        record = {"steps": stage.steps, "lr": stage.lr, "samples": stage.steps * self.cfg.global_batch_size,
                  "history": history, "sources": {k: v.to_dict() for k, v in counts["sources"].items()}}
        if "cleaning" in counts:
            record["cleaning"] = dict(counts["cleaning"])
        elif stage.name == "stage1" and self.cfg.clean:
            record["cleaning"] = {"note": self.cleaning_note}
        return record

    def cleaning(self, per_stage: dict) -> dict | None:
        return per_stage.get("stage1", {}).get("cleaning")


# --------------------------------------------------------------------------- local stand-ins

def write_local_dataset(folder: str | Path, items, fmt: str = "llava") -> Path:
    """Write generated :class:`~infir_lib.vlm.data.VItem` rows as a parquet dataset in one of the Table-9
    formats above (tests and GPU smoke runs point a full config at it instead of the hub)."""
    from datasets import Dataset, Image as ImageFeature  # heavy: datasets

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "llava":
        data = {"image": [it.image for it in items],
                "conversations": [[{"from": "human", "value": "<image>\n" + it.prompt},
                                   {"from": "gpt", "value": it.answer}] for it in items]}
    elif fmt == "qa":
        data = {"image": [it.image for it in items], "question": [it.prompt for it in items],
                "answers": [[it.answer] for it in items]}
    elif fmt == "caption":
        data = {"image": [it.image for it in items], "caption": [it.answer for it in items]}
    elif fmt == "cauldron":
        data = {"images": [[it.image] for it in items],
                "texts": [[{"user": it.prompt, "assistant": it.answer, "source": it.task}] for it in items]}
    else:
        raise ValueError(f"write_local_dataset: format {fmt!r} not one of llava, qa, caption, cauldron")
    ds = Dataset.from_dict(data)
    if "image" in data:
        ds = ds.cast_column("image", ImageFeature())
    ds.to_parquet(str(folder / "train-00000-of-00001.parquet"))
    return folder


def main(argv: list[str] | None = None) -> int:
    """``python -m infir_lib.vlm.hub_data OUT [--rows N] [--size PX]``: three local stage datasets from the
    toy generators (OUT/captions in the llava format, OUT/ocr in the qa format, OUT/vmath in the cauldron
    format), for smoke-testing the full path with no download."""
    ap = argparse.ArgumentParser(prog="python -m infir_lib.vlm.hub_data", description=main.__doc__)
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    out = Path(a.out)
    caps = mismatch_pairs(make_items("caption", a.rows, a.seed, a.size), 0.1, a.seed)
    write_local_dataset(out / "captions", caps, "llava")
    write_local_dataset(out / "ocr", make_items("ocr", a.rows, a.seed + 1, a.size), "qa")
    write_local_dataset(out / "vmath", make_items("vmath", a.rows, a.seed + 2, a.size), "cauldron")
    print(f"wrote {out}/captions (llava), {out}/ocr (qa), {out}/vmath (cauldron): {a.rows} rows each, {a.size} px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
