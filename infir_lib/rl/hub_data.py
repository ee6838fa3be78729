"""Full scale: the released datasets' rows turned into this chapter's RL rows (small adapters, chosen by name).

Every GRPO stage (:func:`.grpo.run_stage`) takes rows in one shape, the shape the toy tasks build
(:mod:`.tasks`, :mod:`.vision`): ``prompt`` (chat messages; a vision row's user content is
``[{"type": "image"}, {"type": "text", ...}]``), ``solution`` (the truth as a string), ``answer_type``
(a checker of :mod:`.rewards`: ``yes_no``, ``choice``, ``math``, ``box``, ``labels``) and, for vision
rows, ``image`` (a PIL image). The released datasets each have their own columns; a config names one
adapter per stage (``dataset_formats``) and :func:`load_stage_rows` applies it. A row an adapter
cannot use is *skipped and counted by reason* (the counts are printed and kept in the run's result);
a wrong format name or a missing column is an error naming the dataset, the format and the columns
found.

What each adapter was checked against (``search`` of the public pages, 2026-11) and what it assumes:

``curr_reft`` — ZTE-AIM/Curr-ReFT-data, the Curr-ReFT release (its dataset card = the GitHub
    README's "Evaluation & Data Usage" section, and the released training scripts
    ``Stage{1,2,3}_*_math_resize.py``). VERIFIED: JSONL rows with ``problem``, ``solution``
    (``<answer>…</answer>``; the open stage's may carry a ``<thinking>`` part first; the card writes
    the stage 1/2 form as ``answer>…</answer>``, so a missing ``<`` is tolerated), ``task`` in
    ``detection`` / ``classify`` / ``math``, and ``image`` = a path relative to an image root the
    scripts take as ``--image_root`` (the release ships the images in ``grpo_data/images/``). The
    scripts ask for ``<think>…</think><answer>…</answer>``, require "exactly 'yes' or 'no'" in the
    judge stage and option letters in the choice stage (several allowed for classification), IoU > 0.5
    for detection boxes, label-set overlap for classification, math-verify (else option letters) for
    math. ASSUMED: the judge/choice answers are single words / letters as the scripts' checkers
    imply; a detection answer holds one ``[x1, y1, x2, y2]`` box (possibly inside JSON); a
    classification answer lists labels separated by commas (the release's checker also splits on
    spaces; here a label may have several words, matching :func:`.rewards.label_set`). A row
    without an ``image`` field becomes a text-only row (the scripts do the same).
``deepscaler`` — agentica-org/DeepScaleR-Preview-Dataset (split ``train``, ~40.3k rows; mirrors'
    cards list ``problem`` / ``answer`` / ``solution``; a discussion on the hub reports rows without an
    answer, which are skipped here). Text-only math rows (Infi-MMR phase 1).
``geo170k`` — Luckyjhg/Geo170K (VERIFIED from its card: splits ``qa_tuning`` 117,205 rows and
    ``alignment``; columns ``image`` (a path string) and ``conversations`` (a list of
    ``{"from", "value"}``)). ASSUMED (G-LLaVA's LLaVA-style data): the first ``human`` turn holds
    the question (with an ``<image>`` marker, removed here) and the last ``gpt`` turn ends with
    ``Answer: …``; an answer that is a single option letter becomes a ``choice`` row, anything else
    ``math``. The images are *not* in the parquet: ``image_roots`` must name where ``image`` paths
    resolve (a local folder of the extracted images, or a folder of a hub dataset, ``OWNER/NAME:FOLDER/``).
``geometry3k`` — hiyouga/geometry3k (VERIFIED from its card: splits train 2,101 / validation 300 /
    test 601; columns ``images`` (a list of images), ``problem``, ``answer``, ``id``, ``choices``,
    ``ground_truth``). ASSUMED: ``answer`` is the final value and ``problem`` may carry an
    ``<image>`` marker (removed here). ``math`` rows.
``chapter`` — rows already in this chapter's shape (what the full path assumed before the adapters).

Captions (Infi-MMR phase 2, image + caption + question): none of the released sets above has a
caption column. The vision adapters use a ``caption`` column when the rows have one (e.g. a local
JSONL to which an automatic captioner's output was added, the paper's recipe); asking the
``caption`` (or ``text``) phase of a set without one is an error that says so, not a silent
image-only run.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..dataset_ids import ImageRoot, Skip, hub_files, parse_dataset_id, to_image
from .rewards import ANSWER_TYPES, BOX, choice_letters, normalise_yes_no

ASK_FORMAT = ("First think about the problem inside <think> </think> tags, then give the final answer "
              "inside <answer> </answer> tags.")
# what each Curr-ReFT stage's answer must look like (the release's prompt suffixes, in our words)
STAGE_SUFFIX = {
    "judge": "Your final answer must be exactly 'yes' or 'no'.",
    "choice": "Your final answer must be exactly one of the option letters, with nothing else.",
    "choice_classify": ("Select every option that correctly describes the image; your final answer must be "
                        "one or more option letters, with nothing else."),
    "detection": "Give the final answer as one box [x1, y1, x2, y2] in pixel coordinates.",
}
CURR_REFT_TASKS = ("detection", "classify", "math")
# stages whose prompt carries a caption (Infi-MMR phase 2) or is text-only (phase 1)
CAPTION_STAGES = ("caption",)
TEXT_STAGES = ("text",)
VISION_STAGES = ("text", "caption", "image")
IMAGE_MARKER = re.compile(r"<image>\s*", re.IGNORECASE)
ANSWER_BLOCK = re.compile(r"<?answer>(.*?)</answer>", re.DOTALL)


@dataclass
class StageRows:
    """The rows of one stage after conversion, with what was skipped and why."""

    dataset: str
    format: str
    stage: str
    rows: list[dict]
    total: int
    skipped: Counter = field(default_factory=Counter)

    def report(self) -> dict:
        return {"dataset": self.dataset, "format": self.format, "rows_read": self.total, "kept": len(self.rows),
                "skipped": dict(self.skipped)}

    def __str__(self) -> str:
        why = "; ".join(f"{n} {reason}" for reason, n in self.skipped.most_common()) or "none"
        return (f"stage {self.stage}: {self.dataset} (format {self.format}): kept {len(self.rows):,} of "
                f"{self.total:,} rows; skipped: {why}")


# --- images: dataset_ids.ImageRoot (paths under an image root), dataset_ids.to_image (image cells) ----------

ImageResolver = ImageRoot  # the name the adapters' signatures use


# --- prompts -----------------------------------------------------------------------------------------

def _vision_prompt(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def _text_prompt(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _row(prompt, solution: str, answer_type: str, image=None, **extra) -> dict:
    row = {"prompt": prompt, "solution": solution, "answer_type": answer_type, **extra}
    if image is not None:
        row["image"] = image
    return row


def _nonempty(value, what: str) -> str:
    if value is None or not str(value).strip():
        raise Skip(f"empty {what}")
    return str(value).strip()


# --- adapters ----------------------------------------------------------------------------------------

def _gold_answer(solution: str) -> str:
    found = ANSWER_BLOCK.findall(solution)
    if len(found) != 1:
        raise Skip("no single <answer> tag in solution" if not found else "several <answer> tags in solution")
    return _nonempty(found[0], "answer in solution")


def curr_reft_row(rec: dict, stage: str, images: ImageResolver) -> dict:
    """One Curr-ReFT release row -> a chapter row; the stage decides the answer type (judge/choice/open)."""
    problem = _nonempty(rec.get("problem"), "problem")
    gold = _gold_answer(_nonempty(rec.get("solution"), "solution"))
    task = rec.get("task")
    if task not in CURR_REFT_TASKS:
        raise Skip(f"unknown task {task!r}")
    if stage == "judge":
        truth = normalise_yes_no(gold)
        if truth is None:  # the release's checker also reads true/correct and false/incorrect
            truth = {"true": "yes", "correct": "yes", "false": "no", "incorrect": "no"}.get(gold.strip(" .").lower())
        if truth is None:
            raise Skip("judge answer is not yes/no")
        answer_type, solution, suffix = "yes_no", truth, STAGE_SUFFIX["judge"]
    elif stage == "choice":
        letters = choice_letters(gold.upper())
        if letters is None:
            raise Skip("choice answer has no option letter")
        answer_type, solution = "choice", letters
        suffix = STAGE_SUFFIX["choice_classify" if task == "classify" else "choice"]
    elif stage == "open":
        if task == "detection":
            box = BOX.search(gold.replace(" ", ""))
            if box is None:
                raise Skip("detection answer has no [x1, y1, x2, y2] box")
            x1, y1, x2, y2 = (float(v) for v in box.groups())
            if x2 <= x1 or y2 <= y1:
                raise Skip("degenerate detection box")
            answer_type, solution, suffix = "box", json.dumps([x1, y1, x2, y2]), STAGE_SUFFIX["detection"]
        elif task == "classify":
            labels = [p.strip(" '\"") for p in re.split(r"[,，、;\n]", gold.strip("[] "))]
            labels = [p for p in labels if p]
            if not labels:
                raise Skip("classification answer has no label")
            answer_type, solution, suffix = "labels", ", ".join(labels), ""
        else:
            answer_type, solution, suffix = "math", gold, ""
    else:
        raise ValueError(f"format curr_reft takes its answer type from the stage (judge, choice, open), not {stage!r}; "
                         "for the mixed arm, convert each stage's files and concatenate the rows")
    text = " ".join(p for p in (problem, ASK_FORMAT, suffix) if p)
    image = rec.get("image")
    if image:  # a path under the release's images folder
        return _row(_vision_prompt(text), solution, answer_type, images.open(image), task=task)
    return _row(_text_prompt(text), solution, answer_type, task=task)


def deepscaler_row(rec: dict, stage: str, images: ImageResolver) -> dict:
    """DeepScaleR: ``problem`` + ``answer`` -> a text-only math row (Infi-MMR phase 1)."""
    if stage not in TEXT_STAGES:
        raise ValueError(f"format deepscaler is text-only; stage {stage!r} needs images (use it for the 'text' phase)")
    problem = _nonempty(rec.get("problem"), "problem")
    answer = _nonempty(rec.get("answer"), "answer")
    return _row(_text_prompt(f"{problem} {ASK_FORMAT}"), answer, "math")


def _vision_question_row(question: str, answer: str, answer_type: str, image_thunk: Callable, rec: dict,
                         stage: str, dataset: str, fmt: str) -> dict:
    """The Infi-MMR forms of one image question: ``text`` (caption + question), ``caption``, ``image``."""
    if stage not in VISION_STAGES:
        raise ValueError(f"format {fmt} builds Infi-MMR rows (stages {list(VISION_STAGES)}), not stage {stage!r}")
    caption = rec.get("caption")
    if stage in CAPTION_STAGES + TEXT_STAGES:
        if caption is None and "caption" not in rec:
            raise ValueError(f"{dataset} (format {fmt}) has no 'caption' column, which phase {stage!r} needs: add "
                             "captions (e.g. an automatic captioner's, as Infi-MMR does) as a 'caption' column, or "
                             "use this set for the 'image' phase")
        caption = _nonempty(caption, "caption")
    if stage in TEXT_STAGES:
        return _row(_text_prompt(f"{caption} {question} {ASK_FORMAT}"), answer, answer_type)
    text = f"Caption: {caption} {question} {ASK_FORMAT}" if stage in CAPTION_STAGES else f"{question} {ASK_FORMAT}"
    return _row(_vision_prompt(text), answer, answer_type, image_thunk())


FINAL_ANSWER = re.compile(r"answer\s*[:：]\s*(.+?)\s*$", re.IGNORECASE | re.DOTALL)


def geo170k_row(rec: dict, stage: str, images: ImageResolver, dataset: str = "", fmt: str = "geo170k") -> dict:
    """Geo170K ``qa_tuning``: the first human turn is the question, the last gpt turn ends with ``Answer: …``."""
    turns = rec.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise Skip("empty conversations")
    human = [t.get("value", "") for t in turns if isinstance(t, dict) and t.get("from") == "human"]
    gpt = [t.get("value", "") for t in turns if isinstance(t, dict) and t.get("from") == "gpt"]
    if not human or not gpt:
        raise Skip("conversation lacks a human or a gpt turn")
    question = _nonempty(IMAGE_MARKER.sub("", human[0]), "question")
    m = FINAL_ANSWER.search(gpt[-1].strip().splitlines()[-1] if gpt[-1].strip() else "")
    if m is None:
        raise Skip("no 'Answer:' in the gpt turn")
    answer = _nonempty(m.group(1).strip(" ."), "answer")
    letter = re.fullmatch(r"\(?([A-E])\)?", answer)
    answer_type, answer = ("choice", letter.group(1)) if letter else ("math", answer)
    return _vision_question_row(question, answer, answer_type, lambda: images.open(rec.get("image")), rec, stage,
                                dataset, fmt)


def _embedded_image(value: Any):
    """An image stored in the dataset itself (PIL, or ``{"bytes": ...}``) -> RGB; a path or nothing is no image."""
    from PIL import Image  # heavy: Pillow, only for datasets that embed their images

    if not (isinstance(value, Image.Image) or isinstance(value, dict) and value.get("bytes")):
        raise Skip("no image")
    try:
        return to_image(value)
    except Exception as e:  # an undecodable cell: the row is unusable, not the run
        raise Skip(f"unreadable image ({type(e).__name__})") from e


def geometry3k_row(rec: dict, stage: str, images: ImageResolver, dataset: str = "", fmt: str = "geometry3k") -> dict:
    """hiyouga/geometry3k: ``images`` (one diagram), ``problem``, ``answer`` -> a math row."""
    question = _nonempty(IMAGE_MARKER.sub("", str(rec.get("problem") or "")), "problem")
    answer = _nonempty(rec.get("answer"), "answer")
    pics = rec.get("images")

    def image():
        if not isinstance(pics, list) or not pics:
            raise Skip("no image")
        if len(pics) > 1:
            raise Skip("several images")
        return _embedded_image(pics[0])

    return _vision_question_row(question, answer, "math", image, rec, stage, dataset, fmt)


def chapter_row(rec: dict, stage: str, images: ImageResolver) -> dict:
    """Rows already in this chapter's shape (checked, passed through)."""
    if rec.get("answer_type") not in ANSWER_TYPES:
        raise Skip(f"unknown answer_type {rec.get('answer_type')!r}")
    if not isinstance(rec.get("prompt"), list) or not rec["prompt"]:
        raise Skip("prompt is not a list of messages")
    out = {k: v for k, v in rec.items() if not (k == "image" and v is None)}  # text rows of a mixed set
    out["solution"] = _nonempty(rec.get("solution"), "solution")
    return out


@dataclass(frozen=True)
class Format:
    adapt: Callable[..., dict]
    columns: tuple[str, ...]  # required columns (the first is enough to tell a wrong format)
    needs_names: bool = False  # adapter takes dataset/format names (for its own errors)


FORMATS: dict[str, Format] = {
    "curr_reft": Format(curr_reft_row, ("problem", "solution", "task")),
    "deepscaler": Format(deepscaler_row, ("problem", "answer")),
    "geo170k": Format(geo170k_row, ("image", "conversations"), needs_names=True),
    "geometry3k": Format(geometry3k_row, ("images", "problem", "answer"), needs_names=True),
    "chapter": Format(chapter_row, ("prompt", "solution", "answer_type")),
}


def check_formats(names: list[str], n_stages: int) -> list[str]:
    """The per-stage format names (``chapter`` for every stage when none are given); unknown names raise."""
    if not names:
        return ["chapter"] * n_stages
    if len(names) != n_stages:
        raise ValueError(f"{n_stages} stage(s) need {n_stages} dataset_formats, got {names}")
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise ValueError(f"unknown dataset format(s) {unknown}; known formats: {sorted(FORMATS)}")
    return list(names)


def convert_rows(records: Iterable[dict], fmt: str, stage: str, *, dataset: str = "<rows>",
                 image_root: str | None = None, columns: Iterable[str] | None = None) -> StageRows:
    """Apply format ``fmt``'s adapter to every record for ``stage``; count the rows it skips.

    ``columns`` are the dataset's column names (from the first record when not given); a required
    column that is absent is an error naming the dataset, the format and the columns found.
    """
    if fmt not in FORMATS:
        raise ValueError(f"{dataset}: unknown dataset format {fmt!r}; known formats: {sorted(FORMATS)}")
    spec = FORMATS[fmt]
    records = iter(records)
    first = next(records, None)
    found = sorted(columns) if columns is not None else sorted(first or {})
    missing = [c for c in spec.columns if c not in found]
    if missing:
        raise ValueError(f"{dataset}: format {fmt!r} needs column(s) {missing}; the dataset has {found}")
    images = ImageResolver(image_root)
    out = StageRows(dataset, fmt, stage, [], 0)
    for rec in ([first] if first is not None else []):
        _convert_one(rec, spec, stage, images, out, fmt)
    for rec in records:
        _convert_one(rec, spec, stage, images, out, fmt)
    return out


def _convert_one(rec: dict, spec: Format, stage: str, images: ImageResolver, out: StageRows, fmt: str) -> None:
    out.total += 1
    try:
        if spec.needs_names:
            row = spec.adapt(rec, stage, images, dataset=out.dataset, fmt=fmt)
        else:
            row = spec.adapt(rec, stage, images)
    except Skip as why:
        out.skipped[str(why)] += 1
        return
    out.rows.append(row)


# --- reading a dataset (local files or the hub) -------------------------------------------------------

def _read_json_files(paths: list[str]) -> tuple[list[dict], list[str]]:
    """Records of local ``.jsonl`` / ``.json`` files; a bad line is an error naming file and line."""
    records: list[dict] = []
    for p in paths:
        text = Path(p).read_text(encoding="utf-8")
        if p.endswith(".json") and text.lstrip().startswith("["):
            records += json.loads(text)
            continue
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}:{i}: not a JSON object ({e.msg})") from e
    cols = sorted({k for r in records for k in r})
    return records, cols


def _local_files(ds_id: str) -> list[str] | None:
    """The local JSON(L) files ``ds_id`` names (a file, a folder of them, or a glob); None if not local."""
    p = Path(ds_id)
    if p.is_file():
        return [str(p)]
    if p.is_dir():
        files = sorted(str(f) for f in p.rglob("*") if f.suffix in (".jsonl", ".json"))
        if not files:
            raise ValueError(f"{ds_id}: a folder with no .jsonl/.json files")
        return files
    if any(ch in ds_id for ch in "*?[") and (ds_id.startswith(("/", ".")) or Path(ds_id.split("*")[0]).exists()):
        files = sorted(glob.glob(ds_id, recursive=True))
        if not files:
            raise ValueError(f"{ds_id}: the pattern matches no files")
        return files
    return None


def read_records(ds_id: str) -> tuple[Iterable[dict], list[str]]:
    """Records and column names of a dataset id (:mod:`infir_lib.dataset_ids`: a local path/glob, or
    ``owner/name[:CONFIG_OR_FILES][@SPLIT]``).

    Hub JSON(L) file patterns (Curr-ReFT's folders) are fetched with ``huggingface_hub.snapshot_download``
    (``allow_patterns`` semantics: ``*`` also matches across folders) and read like local files (their
    files do not all share one schema, which ``datasets``' JSON builder would reject); everything else
    goes through ``datasets.load_dataset``.
    """
    local = _local_files(ds_id)
    if local is not None:
        return _read_json_files(local)
    ds = parse_dataset_id(ds_id)
    if ds.local:
        raise ValueError(f"{ds_id}: no such local file or folder")
    files = ds.data_files
    if files and files.endswith((".jsonl", ".json")):
        folder = hub_files(ds)
        # the same matching as allow_patterns (fnmatch: ``*`` also crosses folders)
        matched = sorted(str(f) for f in folder.rglob("*")
                         if f.is_file() and fnmatch.fnmatch(f.relative_to(folder).as_posix(), files))
        if not matched:
            raise ValueError(f"{ds_id}: no files in {ds.path} match {files!r}")
        return _read_json_files(matched)
    from datasets import load_dataset  # heavy: datasets, only for a hub dataset (the dry-run checks ids without it)

    loaded = load_dataset(**ds.load_kwargs())
    return loaded, list(loaded.column_names)


def load_stage_rows(ds_id: str, fmt: str, stage: str, image_root: str | None = None) -> StageRows:
    """Read dataset ``ds_id`` and convert it with format ``fmt`` for ``stage`` (see the module doc)."""
    if fmt not in FORMATS:  # before any download
        raise ValueError(f"{ds_id}: unknown dataset format {fmt!r}; known formats: {sorted(FORMATS)}")
    records, cols = read_records(ds_id)
    return convert_rows(records, fmt, stage, dataset=ds_id, image_root=image_root, columns=cols)
