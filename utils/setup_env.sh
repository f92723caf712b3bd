#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in <repo>/.venv.
#
# Idempotent and quick when nothing changed: a stamp file records the hash of pyproject.toml,
# and the install only runs again when that hash differs. torch==2.13.0 is installed on its own
# first, because an unpinned torch requirement resolves to a multi-GB CUDA build.
#
# Usage: utils/setup_env.sh            (uses python3 from PATH, or $PYTHON)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$repo/.venv
python=${PYTHON:-python3}
stamp=$venv/.bccmt-installed
want=$(cat "$repo/pyproject.toml" "$repo/utils/setup_env.sh" | sha1sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
  exit 0
fi

echo "$(date '+%F %T') setup_env.sh: preparing $venv" >&2
start=$(date +%s)
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip="$venv/bin/python -m pip --disable-pip-version-check -q"
$pip install "torch==2.13.0"
$pip install -e "$repo[test]"
"$venv/bin/python" -c "import torch, kaldiio, kaldi_native_fbank, soundfile, espeakng_loader, bccmt" \
  || { echo "setup_env.sh: the environment in $venv does not import; remove it and retry" >&2; exit 1; }
echo "$want" > "$stamp"
echo "$(date '+%F %T') setup_env.sh: ready after $(( $(date +%s) - start )) s" >&2
