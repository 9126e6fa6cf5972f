#!/usr/bin/env bash
# The one prepared GPU check of issue 4, for a session lent the GPU machine (see README, "Using a GPU").
# Runs in the repository root with the machine's own python3 (its torch; no install needed: zfviz is
# imported from the checkout) and writes everything under ${OUT:-runs/gpu}:
#   1. the training-throughput benchmark of the full-size ZFNet (fp32 eager vs the tuned paths),
#   2. a short full-size training run (width 1.0, 224 px) on the offline clip-art set, tuned path,
#   3. only with FIG6A_EPOCHS set: the Fig. 6(a) renormalisation ablation at 224 px (see below).
# Budget: about 2 min for 1 and EPOCHS (default 10) x ~15 s for 2 on an H200 (estimates, not yet measured).
# A step that fails does not stop the other (device time is scarce); the exit status says whether all passed.
# A dry run of the plumbing on a CPU, in about 20 seconds (tiny sizes; the numbers mean nothing):
#   PYTHON=.venv/bin/python BENCH_ARGS="--quick --no-compile" EPOCHS=1 OUT=/tmp/gpu-dry RUN_DIR=/tmp/zfviz-dry \
#   TRAIN_ARGS="--width 0.125 --input-size 64 --renders 1 --no-compile" bash benchmarks/gpu_session.sh
# (add FIG6A_EPOCHS=1 FIG6A_DEVICE=cpu FIG6A_ARGS="--input-size 64 --renders 1 --batch-size 32" for step 3)
set -uo pipefail
out=${OUT:-runs/gpu}
run=${RUN_DIR:-/tmp/zfviz-full}      # the checkpoints (~0.5 GB with the optimiser) stay on the machine
PY=${PYTHON:-python3}
mkdir -p "$out" && out=$(cd "$out" && pwd)    # absolute: the steps may change directory
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
failed=0

step() {  # step NAME COMMAND...: run it, keep its output in $out/NAME.txt, note a failure and go on
    local name=$1
    shift
    echo "=== $name: $*"
    if ! "$@" 2>&1 | tee "$out/$name.txt"; then
        echo "=== $name FAILED"
        failed=1
    fi
}

step device "$PY" -c "import torch; print('torch', torch.__version__,
    torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')"
# shellcheck disable=SC2086  # BENCH_ARGS and TRAIN_ARGS are lists of options
step bench_train "$PY" benchmarks/bench_train.py ${BENCH_ARGS:-}
# shellcheck disable=SC2086
step train_full "$PY" -m zfviz.train --width 1.0 --input-size 224 --epochs "${EPOCHS:-10}" --amp bf16 \
    --channels-last --compile --seed 0 --out "$run" --no-progress ${TRAIN_ARGS:-}
cp "$run/history.json" "$out/train_full_history.json" || failed=1
# Optional, when asked with FIG6A_EPOCHS=60 (the shipped CPU run's length): Fig. 6(a) at the paper's image size
# and batch, full width, the paper's init and input scale, with and without renormalisation (two arms; the
# training chapter's section on it). The result comes back under $out, not into data/.
if [ -n "${FIG6A_EPOCHS:-}" ]; then
    # shellcheck disable=SC2086
    step fig6a_224 "$PY" scripts/renorm_paper_scale.py --device "${FIG6A_DEVICE:-cuda}" --input-size 224 \
        --batch-size 128 --epochs "$FIG6A_EPOCHS" --threads 16 --out "$out/renorm_paper_scale_224.pt" ${FIG6A_ARGS:-}
fi
exit $failed
