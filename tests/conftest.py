import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A fresh artifact cache for tests that must build from nothing."""
    monkeypatch.setenv("INFIR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
