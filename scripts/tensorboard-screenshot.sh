#!/usr/bin/env bash
# README "Watch a run": a real grid on digits watched by TensorBoard, and a headless screenshot
# of TensorBoard's scalars page. Needs tensorboard (a dependency) and chromium
# (`apt-get install chromium`). Usage, from the checkout root:
#
#     scripts/tensorboard-screenshot.sh [results-dir] [png]
#
# Defaults: /tmp/byol-bench-watch and results/figures/tensorboard-scalars.png.
set -euo pipefail
results=${1:-/tmp/byol-bench-watch}
png=${2:-results/figures/tensorboard-scalars.png}
port=${PORT:-6006}

# Two methods, two seeds, 6 epochs of the small CNN on digits: a grid side by side.
python run_bench.py --config configs/smoke.yaml --results-dir "$results" \
    --methods byol,byol-nn --seeds 2 --protocols knn \
    --set pretrain.epochs=6 --set run.log_every_steps=5 --set run.monitor_knn_every=2

tensorboard --logdir "$results/tensorboard" --port "$port" --host 127.0.0.1 >/tmp/tensorboard.log 2>&1 &
tb=$!
trap 'kill $tb' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 1; done

# TensorBoard's SCALARS page, filtered to the step-level and per-epoch monitor tags, no
# smoothing; virtual time lets the frontend fetch and draw every chart.
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1600,1300 \
    --virtual-time-budget=60000 --screenshot="$png" \
    "http://127.0.0.1:$port/#scalars&tagFilter=step%7Cmonitor&_smoothingWeight=0" 2>/dev/null
python - "$png" <<'EOF'
import sys
from PIL import Image  # keep the committed figure small: a 256-colour palette
path = sys.argv[1]
Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
EOF
ls -l "$png"
