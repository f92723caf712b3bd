# Sourced by the recipe and the tests: the project venv, the package and utils/ on the paths.
# Works from the repo root and from egs/voxceleb (where it is a link).
BCCMT_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
export BCCMT_ROOT
bash "$BCCMT_ROOT/utils/setup_env.sh"
# shellcheck disable=SC1091
. "$BCCMT_ROOT/.venv/bin/activate"
export PATH=$BCCMT_ROOT/utils:$PATH
export PYTHONPATH=$BCCMT_ROOT${PYTHONPATH:+:$PYTHONPATH}
export LC_ALL=C
export PYTHONUNBUFFERED=1
# One intra-op thread per process by default: the recipe parallelises with jobs/processes.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# A process asking for N threads gets N, however loaded the machine is: with the runtimes' dynamic
# adjustment on, 2 of 9 two-thread runs of the same 3 training steps on a loaded 2-core machine
# used fewer threads for some products and ended with different weights (0 of 9 with it off), so
# a seed's run was not reproducible beside other work. Idle machines give the same numbers either way.
export OMP_DYNAMIC=${OMP_DYNAMIC:-false}
export MKL_DYNAMIC=${MKL_DYNAMIC:-false}
# glibc malloc: keep freed activations in the heap. By default blocks over 32 MB (a training batch's
# activations) are mmap'ed and unmapped on free, so every step page-faults them in again
# (bccmt.bin.benchmark_training measures the difference; the variables are glibc's documented
# tunables and are ignored by other C libraries).
export MALLOC_MMAP_MAX_=${MALLOC_MMAP_MAX_:-0}
export MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD_:-17179869184}
