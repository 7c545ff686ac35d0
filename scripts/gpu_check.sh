#!/usr/bin/env bash
# The training path on a GPU, checked in one run:   bash scripts/gpu_check.sh
# It needs python3 with torch (CUDA) and transformers; rt2_ros runs from the checkout.
# It prints (and writes under $OUT): the train-step bench on the GPU at batch 32 and 256, then a
# short `rt2 train` on the GPU end to end (data, bf16 steps, export) and a fast sim evaluation of
# what it exported through the local backend on the GPU - a check of the path, not a score.
# Without a GPU, `DEVICE=cpu SCALE=smoke bash scripts/gpu_check.sh` runs the same steps
# at toy size in about a minute (test_bench_smoke.py does).
set -euo pipefail
DEVICE=${DEVICE:-cuda}
SCALE=${SCALE:-full}
OUT=${OUT:-out/gpu_check}
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"

if [ "$SCALE" = smoke ]; then
  widths=(32); batches=(4); bench_steps=2
  episodes=3; vqa=24; train_steps=4; eval_episodes=2; workers=1
else
  widths=(128 256 512); batches=(32 256); bench_steps=10
  episodes=200; vqa=2000; train_steps=300; eval_episodes=20; workers=$(nproc)
fi

"$PY" - <<'PYTHON'
import torch
print('torch', torch.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available()
      else 'no CUDA')
PYTHON

for batch in "${batches[@]}"; do
  "$PY" -m bench.train_step --device "$DEVICE" --widths "${widths[@]}" --batch-size "$batch" \
    --steps "$bench_steps" --json-out "$OUT/train_step_b$batch.json"
done

recipe="$OUT/recipe.json"
"$PY" - "$SCALE" "$recipe" <<'PYTHON'
import json, sys
from rt2_ros.training.config import TrainConfig
scale, path = sys.argv[1:]
config = TrainConfig.load('config/training/rt2_demo_vla.json').to_dict()
config.update(checkpoint_every=100, warmup_steps=2)
if scale == 'smoke':
    config['model'].update(image_size=48, patch_size=12, vision_hidden=32, vision_layers=1,
                           vision_heads=2, hidden=48, layers=1, heads=2)
with open(path, 'w') as out:
    json.dump(config, out)
PYTHON

start=$(date +%s)
"$PY" -m rt2_ros.cli.main train --config "$recipe" --out "$OUT/run" --device "$DEVICE" \
  --robot-episodes "$episodes" --vqa-examples "$vqa" --steps "$train_steps" --no-dagger \
  --workers "$workers" --no-progress --restart
echo "rt2 train: $(( $(date +%s) - start )) s wall"
"$PY" -m rt2_ros.cli.main eval-sim --fast --model "$OUT/run/model" --split seen \
  --episodes "$eval_episodes" --json "$OUT/eval_seen.json"
