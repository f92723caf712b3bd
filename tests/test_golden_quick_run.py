"""Golden values of the quick run: after a refactoring, `bash run.sh --quick true` must give the same
EERs, minDCFs and thresholds to the last printed digit (the quick run is deterministic on one
machine: fixed seeds, fixed thread counts).

Floating-point results differ between CPU instruction sets and library builds (the BLAS kernels sum
in other orders), so the golden values are kept per machine signature (CPU vendor, widest vector
ISA, torch and numpy versions) in tests/golden/quick_run.json. On a machine without an entry the
test is skipped and says how to record one; record on a commit whose figures you trust:

    BCCMT_RECORD_GOLDEN=1 bash tests/run.sh -k golden     # writes this machine's entry

then commit tests/golden/quick_run.json.
"""

import json
import os
import platform
from pathlib import Path

import numpy as np
import pytest
import torch

GOLDEN = Path(__file__).resolve().parent / "golden" / "quick_run.json"
MODELS = ("bccmt_base", "bccmt_tiny_kd", "bccmt_tiny")
FIELDS = ("num_target", "num_nontarget", "eer_percent", "eer_threshold", "min_dcf_p0.01",
          "min_dcf_p0.01_threshold", "min_dcf_p0.001", "min_dcf_p0.001_threshold")


def machine_signature() -> str:
    vendor, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id") and vendor == "unknown":
                vendor = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    isa = next((f for f in ("amx_tile", "avx512f", "avx2") if f in flags), platform.machine())
    return f"{vendor}/{isa}/torch-{torch.__version__}/numpy-{np.__version__}"


def read_results(work: Path) -> dict:
    """{'<model>/<trials>.<backend>': {field: value as printed}} of the quick run's result files."""
    out = {}
    for model in MODELS:
        for path in sorted((work / "exp" / model / "scores").glob("*.result")):
            fields = {}
            for line in path.read_text().splitlines():
                key, _, value = line.partition(":")
                if key in FIELDS:
                    fields[key] = value.strip()
            out[f"{model}/{path.stem}"] = fields
    return out


@pytest.mark.slow
def test_quick_run_matches_golden_values(quick_recipe):
    recipe, proc = quick_recipe
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    got = read_results(recipe / "quick")
    assert len(got) == 9 and all(len(v) == len(FIELDS) for v in got.values()), got
    sig = machine_signature()
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if os.environ.get("BCCMT_RECORD_GOLDEN") == "1":
        golden[sig] = got
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        return
    if sig not in golden:
        pytest.skip(f"no golden quick-run values for this machine ({sig}); record them with "
                    f"BCCMT_RECORD_GOLDEN=1 bash tests/run.sh -k golden (have: {sorted(golden)})")
    want = golden[sig]
    diffs = [f"{k} {f}: {want.get(k, {}).get(f)} -> {got[k].get(f)}" for k in sorted(set(want) | set(got))
             for f in FIELDS if want.get(k, {}).get(f) != got.get(k, {}).get(f)]
    assert not diffs, "the quick run's results changed:\n  " + "\n  ".join(diffs)
