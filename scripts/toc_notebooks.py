"""Print the notebooks listed in _toc.yml, in book order (the order they are executed in)."""

import sys
from pathlib import Path

import yaml

root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
toc = yaml.safe_load((root / "_toc.yml").read_text())


def walk(node):
    if isinstance(node, dict):
        if "file" in node:
            yield node["file"]
        for value in node.values():
            if isinstance(value, (list, dict)):
                yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


for entry in walk(toc):
    path = root / f"{entry}.ipynb"
    if path.exists():
        print(path.as_posix())
