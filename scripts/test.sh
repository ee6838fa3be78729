#!/usr/bin/env bash
# Run every test: unit tests of infir_lib, nbmake over every notebook in the table of contents
# (this also builds the HTML book with warnings as errors), then the tests that read the built book
# (browser test, scorecard completeness). .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export INFIR_SHARED_DATA="${INFIR_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

echo "== unit tests"
.venv/bin/python -m pytest -p no:cacheprovider -m "not after_book" --durations=15 tests
echo "== notebooks (nbmake) and the book build"
bash scripts/build_book.sh
echo "== tests of the built book"
.venv/bin/python -m pytest -p no:cacheprovider -m after_book tests
