"""The artifact cache that lets every chapter run on its own, in any order.

A stage's output (a corpus, a tokenizer, a model) is stored under
``<cache>/<kind>/<name>-<hash>/`` where the hash covers the stage's config. Asking for an artifact
returns the stored copy when its hash matches and its manifest verifies, and builds it otherwise.
Builds happen in a temporary folder renamed into place (atomic), under a file lock (several
notebooks may ask at once), and every file's size and SHA-256 is recorded in ``MANIFEST.json`` so a
partial or corrupt copy is detected and rebuilt rather than loaded.

A spec that names a local data file (or a folder of them) is keyed by that file's contents too, so
editing a local JSONL rebuilds what was made from it. A build killed half-way leaves a ``.tmp-*``
folder; the next request for that kind removes it once no live build holds its lock. Lock files stay
(``filelock`` uses ``flock``, which the kernel releases when a process dies), so they never block.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock, Timeout

from . import __version__
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


DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".txt", ".csv", ".arrow")
_DIGESTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, so a file is read once


def _content_digest(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = _file_digest(path)
    return _DIGESTS[key]


def _local_fingerprint(value: str) -> str | None:
    """SHA-256 over the data files a string names (a file, or a folder of them); None if it names none."""
    if not value or len(value) > 1024 or "\n" in value or value.startswith(("toy:", "hf://")):
        return None
    p = Path(value).expanduser()
    try:
        if p.is_file() and p.suffix in DATA_SUFFIXES:
            files = [p]
        elif "/" in value and p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in DATA_SUFFIXES)
        else:
            return None
        root = cache_root().resolve()
        if p.resolve().is_relative_to(root):  # an artifact: already keyed by its own spec
            return None
        h = hashlib.sha256()
        for f in files:
            h.update(f.relative_to(p).as_posix().encode() if f != p else b"")
            h.update(_content_digest(f).encode())
        return h.hexdigest()
    except OSError:
        return None


def local_inputs(spec: Any) -> dict[str, str]:
    """``{path: content hash}`` for every string in ``spec`` that names a local data file or folder."""
    found: dict[str, str] = {}

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif isinstance(v, str):
            digest = _local_fingerprint(v)
            if digest:
                found[v] = digest

    walk(spec)
    return found


def spec_hash(spec: Any) -> str:
    """A stable short hash of plain data (dicts are hashed with sorted keys) and of the local files it names."""
    payload = {"format": CACHE_FORMAT, "version": __version__, "spec": spec}  # a new release never reuses an old one's
    inputs = local_inputs(spec)
    if inputs:  # specs naming no local file (every toy preset) keep the key they always had
        payload["local_inputs"] = inputs
    blob = json.dumps(payload, sort_keys=True, default=str)
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


# .tmp-<name>-<16-hex spec hash>-<pid>-<8 hex> (builds before the pid was added: no -<pid>)
_TMP = re.compile(r"^\.tmp-(?P<final>(?:.*-)?[0-9a-f]{16})(?:-(?P<pid>\d+))?-[0-9a-f]{8}$")


def clean_stale_builds(kind_dir: Path, log: Callable[[str], None] = print) -> int:
    """Remove the ``.tmp-*`` folders of builds that died (their artifact's lock is free); returns how many."""
    removed = 0
    for tmp in sorted(kind_dir.glob(".tmp-*")):
        m = _TMP.match(tmp.name)
        if not tmp.is_dir() or not m:
            continue
        lock = FileLock(str(kind_dir / m.group("final")) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:  # a live build holds it: its folder is in use
            continue
        try:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
                removed += 1
        finally:
            lock.release()
    if removed:
        log(f"[artifacts] removed {removed} folder(s) left by interrupted builds in {kind_dir.name}/")
    return removed


def cached(kind: str, spec: Any, build: Callable[[Path], None], *, name: str = "",
           rebuild: bool = False, log: Callable[[str], None] = print) -> Path:
    """Return the folder of artifact (kind, spec), building it with ``build(tmp_folder)`` if needed.

    ``spec`` must be plain data and must include everything the result depends on (its config,
    and the specs of the artifacts it was built from).
    """
    final = artifact_dir(kind, spec, name)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_builds(final.parent, log)
    with FileLock(str(final) + ".lock"):
        if final.exists() and not rebuild:
            ok, why = verify(final)
            if ok:
                return final
            log(f"[artifacts] {kind}/{final.name} is unusable ({why}); rebuilding")
        if final.exists():
            shutil.rmtree(final)
        tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
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
