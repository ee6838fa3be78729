#!/usr/bin/env bash
# Set everything up on a fresh machine (idempotent, quick when already done):
#   - system tools the book uses: bubblewrap (the code sandbox) and chromium + chromium-driver (the browser test),
#     installed with apt when running as root on Debian/Ubuntu; otherwise a notice;
#   - a virtual environment in .venv with the exact pins of constraints.txt (torch 2.13.0 CPU wheel) for the
#     ranges pyproject.toml declares.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing system packages: ${need[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "[setup] NOTE: missing ${need[*]} (not root or no apt): the sandbox falls back to rlimits only," \
         "and the browser test is skipped." >&2
  fi
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3.12 python3.10 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY=$cand; break; fi
  done
fi
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing pinned packages (about a minute and a half)"
  # The machine's pip config lists local indexes that may not exist; hide only those warnings.
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[book,test]' 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
  .venv/bin/python -m pip check
  .venv/bin/python -c "import torch, sys; v=torch.__version__; sys.exit(0 if v.startswith('2.13.0') else 'torch ' + v + ' is not the pinned 2.13.0')"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
echo "[setup] ready: $(.venv/bin/python --version), torch $(.venv/bin/python -c 'import torch; print(torch.__version__)')"
