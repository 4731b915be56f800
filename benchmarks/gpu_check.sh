#!/usr/bin/env bash
# The GPU check of issue 13 ("GPU scale") as one prepared run on a machine with one CUDA GPU (benchmarks/run.py
# --device cuda): t) the stack's CUDA tests (tests/test_stack.py -k cuda), d) solo vs stacked training throughput
# at widths 32 and 64 for 1 to 64 seeds per stack, f) scoring one run of config/paper.yaml, e) the paper study's
# projected wall time from d) and f). On synthetic images of Fashion-MNIST's shape (tests/synthetic_idx.py): such
# a machine may lack the dataset, and the images' content does not change the cost.
#
#   benchmarks/gpu_check.sh [more benchmarks/run.py options]     GPU_CHECK_TIMEOUT: seconds in all (default 500)
#
# Writes gpu_check.log, the benchmark CSV and nvidia-smi.txt into $OUT when it is set, else results/benchmarks/.
# ganablate is read from src/ (no install needed). Packages it needs that the machine lacks (there: jsonschema with
# its needs, and torch-fidelity) are installed from wheels in .whl/ when that folder holds some.
set -u
cd "$(dirname "$0")/.." || exit 1
out="${OUT:-results/benchmarks}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/ganablate-site \
        .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/ganablate-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
timeout -k 10 "${GPU_CHECK_TIMEOUT:-500}" python3 benchmarks/run.py --device cuda --synthetic --out "$out" "$@" 2>&1 \
    | tee "$out/gpu_check.log"
status=${PIPESTATUS[0]}
echo "gpu_check: exit status $status" | tee -a "$out/gpu_check.log"
exit "$status"
