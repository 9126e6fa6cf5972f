#!/usr/bin/env bash
# The one prepared GPU check of issue 4, for a session lent the GPU machine (see README, "Using a GPU").
# Runs in the repository root with the machine's own python3 (its torch; no install needed: zfviz is
# imported from the checkout) and writes everything under ${OUT:-runs/gpu}:
#   1. the training-throughput benchmark of the full-size ZFNet (fp32 eager vs the tuned paths),
#   2. a short full-size training run (width 1.0, 224 px) on the offline clip-art set, tuned path.
# Budget: about 2 min for 1 and EPOCHS (default 10) x ~15 s for 2 on an H200 (estimates, not yet measured).
set -euo pipefail
out=${OUT:-runs/gpu}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee "$out/device.txt"
python3 benchmarks/bench_train.py | tee "$out/bench_train.txt"
# Checkpoints of the full net (~0.5 GB with the optimiser) stay on the machine; the history comes back.
python3 -m zfviz.train --width 1.0 --image-size 224 --epochs "${EPOCHS:-10}" --amp bf16 --channels-last \
    --compile --seed 0 --out /tmp/zfviz-full --no-progress | tee "$out/train_full.txt"
cp /tmp/zfviz-full/history.json "$out/train_full_history.json"
