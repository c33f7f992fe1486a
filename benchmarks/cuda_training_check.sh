#!/bin/bash
# The CUDA training path on a GPU machine: stage-1 PCARN-M, bf16 autocast and fp32, 600 steps each.
# Usage: bash benchmarks/cuda_training_check.sh PHOTOS/ VAL/ OUT/   (result: benchmarks/results/cuda_training_h100.json)
photos=${1:?photo folder} val=${2:?validation folder} out=${3:?output folder}
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for amp in bf16 none; do
  python3 -m pcarn train --variant pcarn-m --stage l1 --data "$photos" --val "$val" \
    --out "$out/run-$amp" --device cuda --amp $amp --steps 600 --batch 64 --patch 48 --recipe fast \
    --val-every 300 --save-every 300 --log-every 50 --workers 12 --quiet
done
