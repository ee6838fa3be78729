"""One way to name a dataset (or a folder of images) at full scale, and the row helpers both adapters share.

The syntax, used by every full-scale config (``rl`` datasets and image roots, ``vlm`` stage datasets)::

    SOURCE[:PART][@SPLIT]

``SOURCE`` is a local path (a file, a folder, a glob; anything that exists, or starts with ``/``,
``.`` or ``~``, or has more than one ``/``) or a hub dataset repo ``owner/name``. ``PART`` is a config
name (``HuggingFaceM4/the_cauldron:textcaps``), or, when it contains ``/`` or ``*``, files or a folder
inside the repo (``ZTE-AIM/Curr-ReFT-data:grpo_data/train/open/*/*_train.jsonl``, an image root
``ZTE-AIM/Curr-ReFT-data:grpo_data/images/``), for releases that are folders of files rather than
configs. ``SPLIT`` defaults to ``train``. :func:`parse_dataset_id` is the one parser;
:meth:`DatasetId.load_kwargs` gives ``datasets.load_dataset`` its arguments.

Rows an adapter cannot use raise :class:`Skip` (its message is the reason they are counted under);
:func:`to_image` reads an image cell in any of the forms ``datasets`` gives; :class:`ImageRoot` opens
images that rows name by a path relative to a root given in the same syntax.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HUB_REPO = re.compile(r"[\w.-]+/[\w.-]+")


class Skip(Exception):
    """A row an adapter cannot use; the message is the reason it is counted under."""


@dataclass(frozen=True)
class DatasetId:
    """A parsed ``SOURCE[:PART][@SPLIT]`` (see the module doc)."""

    path: str  # a local path or a hub repo "owner/name"
    name: str | None = None  # a config of the hub dataset
    data_files: str | None = None  # files (or a folder) inside the repo
    split: str = "train"

    @property
    def local(self) -> bool:
        return _is_local(self.path)

    def load_kwargs(self) -> dict:
        """Keyword arguments of ``datasets.load_dataset`` (no ``name``/``data_files`` key when unset)."""
        out = {"path": self.path, "split": self.split}
        if self.name:
            out["name"] = self.name
        if self.data_files:
            out["data_files"] = self.data_files
        return out

    def __str__(self) -> str:
        part = self.name or self.data_files
        return self.path + (f":{part}" if part else "") + f"@{self.split}"


def _is_local(path: str) -> bool:
    return Path(path).expanduser().exists() or path.startswith(("/", ".", "~")) or path.count("/") > 1


def parse_dataset_id(text: str) -> DatasetId:
    """``SOURCE[:PART][@SPLIT]`` -> :class:`DatasetId`; a source that is neither local nor ``owner/name`` raises."""
    if not text or not text.strip():
        raise ValueError("empty dataset id")
    if Path(text).expanduser().exists():  # a local path that happens to contain ':' or '@'
        return DatasetId(text)
    rest, at, split = text.rpartition("@")
    if not at or "/" in split:  # no split given ('@' inside a path is part of it)
        rest, split = text, ""
    source, _, part = rest.partition(":")
    if not source:
        raise ValueError(f"dataset id {text!r}: empty source before ':'")
    if not _is_local(source) and not HUB_REPO.fullmatch(source):
        raise ValueError(f"dataset id {text!r} must start with a local path or a hub repo 'owner/name'")
    files = part if part and ("/" in part or "*" in part) else None
    return DatasetId(source, None if files else (part or None), files, split or "train")


def hub_files(ds: DatasetId, pattern: str | None = None) -> Path:
    """The files of hub dataset ``ds`` that ``pattern`` (default: its ``data_files``) matches, fetched once
    (``huggingface_hub.snapshot_download``, which caches them); returns the local snapshot folder."""
    from huggingface_hub import snapshot_download

    pattern = pattern if pattern is not None else ds.data_files
    return Path(snapshot_download(ds.path, repo_type="dataset", allow_patterns=[pattern] if pattern else None))


def to_image(value: Any, root: Path | None = None):
    """An RGB PIL image from an image cell: a PIL image, ``{"bytes", "path"}``, or a path (relative to ``root``).

    Nothing to read (``None``, a dict with neither bytes nor path) is a :class:`Skip` ("no image"); a
    file that cannot be opened raises what PIL raises (callers count it under their own reason).
    """
    from PIL import Image

    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict) and value.get("bytes"):
        return Image.open(io.BytesIO(value["bytes"])).convert("RGB")
    if isinstance(value, dict) and value.get("path") or isinstance(value, str) and value:
        path = Path(value["path"] if isinstance(value, dict) else value)
        if root is not None and not path.is_absolute():
            path = Path(root) / path
        with Image.open(path) as img:
            return img.convert("RGB")
    if value is None or isinstance(value, (dict, str)):
        raise Skip("no image")
    raise TypeError(f"cannot read an image from {type(value).__name__}")


class ImageRoot:
    """Opens the images rows name by a path relative to ``root`` (a dataset id: a local folder, or a
    folder inside a hub dataset repo, ``owner/name:folder/``, fetched once with :func:`hub_files`).

    An absolute path that does not exist here (the authors' machine) is re-rooted at what follows its
    last ``images/``. A file that is absent or unreadable is a :class:`Skip`.
    """

    def __init__(self, root: str | None):
        self.root = root
        self._local: Path | None = None

    def folder(self) -> Path:
        if self._local is None:
            if self.root is None:
                raise ValueError("rows name images by path but no image root is configured (set image_roots, "
                                 "one per stage)")
            if self.root.startswith("hf://"):
                raise ValueError(f"image root {self.root!r}: write a folder of a hub dataset as "
                                 "'owner/name:folder/' (infir_lib/dataset_ids.py)")
            ds = parse_dataset_id(self.root)
            if ds.local:
                self._local = Path(ds.path).expanduser()
            else:
                sub = (ds.data_files or ds.name or "").strip("/")
                self._local = hub_files(ds, f"{sub}/*" if sub else None) / sub
        return self._local

    def path(self, rel: str) -> Path:
        if not rel or not isinstance(rel, str):
            raise Skip("empty image path")
        if Path(rel).is_absolute():
            if Path(rel).is_file():
                return Path(rel)
            rel = rel.rsplit("images/", 1)[-1] if "images/" in rel else Path(rel).name
        return self.folder() / rel.lstrip("/")

    def open(self, rel: str):
        path = self.path(rel)
        if not path.is_file():
            raise Skip("image file not found")
        try:
            return to_image(str(path))
        except Exception as e:  # a truncated or non-image file: the row is unusable, not the run
            raise Skip(f"unreadable image ({type(e).__name__})") from e
