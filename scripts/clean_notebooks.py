"""Store notebooks clean: outputs and execution counts stripped, a Python 3 kernelspec set.

    python scripts/clean_notebooks.py notebooks/*.ipynb
"""

import sys

import nbformat

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}

for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    print("cleaned", path)
