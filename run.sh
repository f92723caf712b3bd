#!/usr/bin/env bash
# Quick start: runs the VoxCeleb recipe (egs/voxceleb/run.sh) on the built-in mini corpus.
# Every option is passed on, e.g.
#   bash run.sh                              # stages 0-6, default mini corpus
#   bash run.sh --quick true                 # tiny corpus, short schedules (what CI runs)
#   bash run.sh --stage 4 --stop-stage 6     # rerun part of it
#   bash run.sh --help                       # the recipe's options
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/egs/voxceleb"
exec bash run.sh "$@"
