#!/usr/bin/env bash
# Installs what the test suite needs (Python packages, a PostgreSQL server, Chromium), then runs it.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/test_funnel.py -x`.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

missing=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
  missing+=(postgresql)
fi
if ! command -v chromium >/dev/null; then
  missing+=(chromium)
fi
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "The tests need these system packages: ${missing[*]} (apt-get install ${missing[*]})." >&2
    exit 1
  fi
fi

# Three test processes (TEST_WORKERS to change it; 0 runs them in this one), each test file whole
# in one of them: a file's servers and fixtures are started once. Each process starts its own
# PostgreSQL server. Three on two cores, because the slowest tests mostly wait (on faults, retries,
# timeouts and browsers): a fresh clone's run took 16 min 0 s with three and 18 min 50 s with two,
# minutes apart, using the same 22 min of CPU. Files are handed out longest first
# (tests/conftest.py, LONGEST_FILES); the slowest tests are listed at the end, to keep that order
# and the run's length in check.
exec python -m pytest -n "${TEST_WORKERS:-3}" --dist loadfile --no-loadscope-reorder --durations=25 "$@"
