"""The artifact cache that lets every chapter run on its own, in any order.

A stage's output (a corpus, a tokenizer, a model) is stored under
``<cache>/<kind>/<name>-<hash>/`` where the hash covers the stage's config. Asking for an artifact
returns the stored copy when its hash matches and its manifest verifies, and builds it otherwise.
Builds happen in a temporary folder renamed into place (atomic), under a file lock (several
notebooks may ask at once), and every file's size and SHA-256 is recorded in ``MANIFEST.json`` so a
partial or corrupt copy is detected and rebuilt rather than loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock

from .config import REPO_ROOT

# Bump when the on-disk layout of artifacts changes, so stale copies are not reused.
CACHE_FORMAT = 1
MANIFEST = "MANIFEST.json"


def cache_root() -> Path:
    """``$INFIR_CACHE``, else ``.cache/`` in a source checkout, else ``~/.cache/infir``."""
    env = os.environ.get("INFIR_CACHE")
    if env:
        return Path(env).expanduser()
    if (REPO_ROOT / "pyproject.toml").exists():
        return REPO_ROOT / ".cache"
    return Path.home() / ".cache" / "infir"


def spec_hash(spec: Any) -> str:
    """A stable short hash of plain data (dicts are hashed with sorted keys)."""
    from . import __version__  # a new release of the library never reuses an old release's artifacts

    blob = json.dumps({"format": CACHE_FORMAT, "version": __version__, "spec": spec}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_manifest(folder: Path, kind: str, spec: Any, seconds: float) -> None:
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            rel = p.relative_to(folder).as_posix()
            files[rel] = {"bytes": p.stat().st_size, "sha256": _file_digest(p)}
    manifest = {"kind": kind, "spec": spec, "files": files, "build_seconds": round(seconds, 2),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))


def verify(folder: Path) -> tuple[bool, str]:
    """Check a stored artifact against its manifest: every file present, same size and hash."""
    mf = folder / MANIFEST
    if not mf.is_file():
        return False, "no manifest (build was interrupted)"
    try:
        manifest = json.loads(mf.read_text())
    except json.JSONDecodeError:
        return False, "manifest is not valid JSON"
    for rel, meta in manifest.get("files", {}).items():
        p = folder / rel
        if not p.is_file():
            return False, f"missing file {rel}"
        if p.stat().st_size != meta["bytes"] or _file_digest(p) != meta["sha256"]:
            return False, f"file {rel} does not match its manifest"
    return True, "ok"


def artifact_dir(kind: str, spec: Any, name: str = "") -> Path:
    """Where the artifact for (kind, spec) lives, whether or not it exists yet."""
    prefix = f"{name}-" if name else ""
    return cache_root() / kind / f"{prefix}{spec_hash(spec)}"


def cached(kind: str, spec: Any, build: Callable[[Path], None], *, name: str = "",
           rebuild: bool = False, log: Callable[[str], None] = print) -> Path:
    """Return the folder of artifact (kind, spec), building it with ``build(tmp_folder)`` if needed.

    ``spec`` must be plain data and must include everything the result depends on (its config,
    and the specs of the artifacts it was built from).
    """
    final = artifact_dir(kind, spec, name)
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if final.exists() and not rebuild:
            ok, why = verify(final)
            if ok:
                return final
            log(f"[artifacts] {kind}/{final.name} is unusable ({why}); rebuilding")
        if final.exists():
            shutil.rmtree(final)
        tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        t0 = time.time()
        try:
            build(tmp)
            _write_manifest(tmp, kind, spec, time.time() - t0)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def list_artifacts(kind: str | None = None) -> list[dict]:
    """What is in the cache (for the book's orientation chapter and for cleaning up)."""
    root = cache_root()
    out = []
    kinds = [root / kind] if kind else [p for p in root.glob("*") if p.is_dir()]
    for kdir in kinds:
        for folder in sorted(kdir.glob("*")):
            if folder.is_dir() and not folder.name.startswith(".tmp-"):
                ok, why = verify(folder)
                size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
                out.append({"kind": kdir.name, "name": folder.name, "ok": ok, "status": why, "bytes": size})
    return out


def save_json(obj: Any, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str))


def load_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
