#!/usr/bin/env bash
# The project's test command: bootstraps the venv, then runs pytest.
#   bash tests/run.sh              # whole suite, slow end-to-end run included (what CI runs)
#   bash tests/run.sh -m "not slow"  # fast tests only
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. ./path.sh
set +e
python -m pytest -q "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "tests/run.sh: pytest collected no tests; treating that as a failure" >&2
  exit 1
fi
exit $rc
