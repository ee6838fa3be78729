#!/usr/bin/env bash
# Build the book: execute every notebook at toy scale (nbmake, in book order) and render the HTML
# (Jupyter Book 1.x, warnings as errors). Offline. Prints where the HTML is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export INFIR_SHARED_DATA="${INFIR_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

SITE=_book  # not under _build/: nbmake refuses to collect notebooks below a folder named _build
rm -rf "$SITE"
mkdir -p "$SITE"
cp -r book notebooks _config.yml _toc.yml "$SITE"/
mapfile -t NOTEBOOKS < <(.venv/bin/python scripts/toc_notebooks.py "$SITE")
echo "[book] executing ${#NOTEBOOKS[@]} notebooks (nbmake writes their outputs into $SITE)"
.venv/bin/python -m pytest -p no:cacheprovider --nbmake --overwrite --nbmake-timeout=1200 \
  --durations=0 -o junit_duration_report=call --junitxml=_book/notebooks.xml "${NOTEBOOKS[@]}"
echo "[book] rendering HTML"
.venv/bin/jupyter-book build -W -n --keep-going "$SITE"
echo "[book] HTML book: $(pwd)/$SITE/_build/html/index.html"
