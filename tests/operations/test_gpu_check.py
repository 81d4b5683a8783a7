"""benchmarks/gpu_check.sh's verdict (exit status and summary), run without a GPU: ``PYTHON`` points at
a stub that answers the script's torch probes and stands in for ``onebp`` (import, bench, train,
device agreement, gpu-run); the script's own result parsers run on the real interpreter. Each run
takes about a second."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="gpu_check.sh needs bash")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh"

# STUB_CUDA=1: torch "sees" one GPU. STUB_BREAK names the part that misbehaves: bench / train /
# agreement (exit 0, unreadable output), disagree (exit 0, "agree": false), slots (gpu-run crashes
# when it is not given fake devices, as a real-GPU failure would).
STUB = r"""#!/usr/bin/env bash
out_arg() { while [ $# -gt 0 ]; do [ "$1" = --out ] && { echo "$2"; return; }; shift; done; }
case "$1" in
  -c)
    case "$2" in
      *torch.cuda.is_available*) echo "${STUB_CUDA:-0}";;
      *get_device_name*) echo "Stub GPU";;
      *device_count*) echo 1;;
      *torch.__version__*) echo "0.0+stub";;
      *time.sleep*) echo "${CUDA_VISIBLE_DEVICES:-cpu} ${STUB_T0:-0} ${STUB_T1:-1}";;  # a gpu-run job
      *) exec "$REAL_PY" "$@";;  # the script's result parsers
    esac;;
  -) exec "$REAL_PY" "$@";;
  -m)
    case "$2 $3" in
      "onebp data") mkdir -p "$(out_arg "$@")";;
      "onebp bench")
        if [ "${STUB_BREAK:-}" = bench ]; then echo "Traceback (most recent call last): not JSON"; exit 0; fi
        echo '{"epoch_seconds_median": 0.1, "eval_seconds_median": 0.05, "dim": 32, "device": "stub"}';;
      "onebp train")
        out=$(out_arg "$@"); mkdir -p "$out"
        if [ "${STUB_BREAK:-}" = train ]; then echo '{"timing": {' > "$out/metrics.json"; exit 0; fi
        echo '{"timing": {"epoch_seconds_median": 1.0}, "valid": {"ndcg@20": 0.1}, "memory": {"peak_gpu_mb": 100}}' \
          > "$out/metrics.json";;
      "pytest -q") echo "5 passed in 1.00s";;
      "onebp.operations.device_agreement "*)
        case "${STUB_BREAK:-}" in
          agreement) echo "not JSON";;
          disagree) echo '{"agree": false, "loss_max_rel_diff": 0.5, "metric_max_abs_diff": 0.0, "disagreements": ["epoch 2: training loss on cuda:0 is nan"]}';;
          *) echo '{"agree": true, "loss_max_rel_diff": 1e-06, "metric_max_abs_diff": 0.0, "disagreements": []}';;
        esac;;
      "onebp.operations.gpu_slots "*)
        shift 2
        slots=""; per=1
        while [ "$1" != -- ]; do
          case "$1" in --slots-dir) slots=$2; shift;; --jobs-per-device) per=$2; shift;; esac; shift
        done
        shift
        if [ -z "${ONEBP_GPUS:-}" ] && [ "${STUB_BREAK:-}" = slots ]; then echo "Traceback: boom" >&2; exit 1; fi
        mkdir -p "$slots"
        if [ -n "${ONEBP_GPUS:-}" ]; then  # fake devices: the first free (device, job) slot
          for d in ${ONEBP_GPUS//,/ }; do for j in $(seq "$per"); do
            mkdir "$slots/$d-$j" 2>/dev/null && exec env CUDA_VISIBLE_DEVICES="$d" "$@"
          done; done
          exit 1
        fi
        for n in 1 2; do  # the n-th job in; on one GPU the second runs after the first
          if mkdir "$slots/job$n" 2>/dev/null; then
            dev=(); [ "${STUB_CUDA:-0}" = 1 ] && dev=(CUDA_VISIBLE_DEVICES=0)
            exec env "${dev[@]}" STUB_T0=$((2 * n - 1)) STUB_T1=$((2 * n)) "$@"
          fi
        done
        exit 1;;
      *) echo "stub python: unexpected $*" >&2; exit 97;;
    esac;;
  *) echo "stub python: unexpected $*" >&2; exit 97;;
esac
"""


def make_data(root: Path, ml: bool = True, gowalla: bool = True) -> Path:
    if ml:
        (root / "ml-100k-onebp-split").mkdir(parents=True)
        for name in ("100k_train.csv", "100k_test.csv"):
            (root / "ml-100k-onebp-split" / name).write_text("")
    if gowalla:
        (root / "gowalla-lightgcn").mkdir(parents=True)
        for name in ("train.txt", "test.txt"):
            (root / "gowalla-lightgcn" / name).write_text("")
    root.mkdir(exist_ok=True)
    return root


def run_check(tmp_path: Path, data: Path, **env: str) -> tuple[int, str, dict[str, tuple[str, str]]]:
    """Exit status, stdout, and the summary table (step -> (status, result))."""
    stub = tmp_path / "python-stub"
    if not stub.exists():
        stub.write_text(STUB)
        stub.chmod(0o755)
    work = tmp_path / f"work{len(list(tmp_path.glob('work*')))}"
    work.mkdir()
    full_env = {k: v for k, v in os.environ.items() if k not in ("ALLOW_NO_GPU", "ONEBP_GPUS")}
    full_env.update(PYTHON=str(stub), REAL_PY=sys.executable, TMPDIR=str(work), **env)
    proc = subprocess.run(["bash", str(SCRIPT), str(data)], env=full_env, capture_output=True, text=True,
                          timeout=60)
    (summary,) = work.glob("onebp-gpu-check.*/summary.tsv")
    with summary.open(newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))[1:]
    return proc.returncode, proc.stdout, {step: (status, result) for step, status, result in rows}


def test_without_cuda_the_check_is_incomplete_unless_a_cpu_only_run_is_asked_for(tmp_path):
    data = make_data(tmp_path / "data")
    rc, out, table = run_check(tmp_path, data, STUB_CUDA="0")
    assert rc == 3, out  # used to exit 0 after skipping every GPU step
    assert table["pytest -m cuda"][0] == "skipped" and table["cpu vs cuda"][0] == "skipped"
    assert table["bench onebp ml-100k"][0] == "ok" and table["gpu-run x2"][0] == "ok"
    assert "exit 3: the check is incomplete:\n  - no CUDA device" in out

    rc, out, _ = run_check(tmp_path, data, STUB_CUDA="0", ALLOW_NO_GPU="1")
    assert rc == 0, out


def test_with_cuda_every_step_runs_and_a_missing_split_is_named_and_incomplete(tmp_path):
    rc, out, table = run_check(tmp_path, make_data(tmp_path / "all"), STUB_CUDA="1")
    assert rc == 0, out
    assert {status for status, _ in table.values()} == {"ok"}, table
    assert "cpu vs cuda onebp" in table and "short run simplex gowalla" in table

    rc, out, table = run_check(tmp_path, make_data(tmp_path / "no-ml", ml=False), STUB_CUDA="1")
    assert rc == 3, out
    # used to say "no CUDA device": the two conditions were joined in one test
    assert table["cpu vs cuda"] == ("skipped", "no ML-100K split")
    assert table["bench onebp ml-100k"] == ("skipped", "no split")
    assert table["bench onebp gowalla d1024"][0] == "ok"
    assert "exit 3: the check is incomplete:\n  - a step's data is missing" in out


@pytest.mark.parametrize(("broken", "step"), [
    ("bench", "bench onebp ml-100k"),         # exit 0, output not JSON: was recorded ok
    ("agreement", "cpu vs cuda onebp"),       # exit 0, output not JSON: was recorded ok
    ("disagree", "cpu vs cuda onebp"),        # exit 0 with "agree": false
    ("train", "short run lightgcn gowalla"),  # exit 0, metrics.json unreadable: was ok, blank
    ("slots", "gpu-run x2"),                  # the helper crashed: a blank status, not FAILED
])
def test_a_step_that_misbehaves_fails_the_check(tmp_path, broken, step):
    rc, out, table = run_check(tmp_path, make_data(tmp_path / "data"), STUB_CUDA="1", STUB_BREAK=broken)
    assert rc == 1, out
    assert table[step][0] == "FAILED", table
    assert "exit 1: a step failed" in out
