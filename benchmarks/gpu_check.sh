#!/usr/bin/env bash
# GPU check, run on a lent GPU machine through the device tool (see BENCHMARKS.md):
#   the demo end to end on CUDA, post-training and fine-tuning throughput of a klue-bert-base-sized
#   random model in bf16, and `accelerate launch` with configs/accelerate/single_gpu.yaml.
# Packages missing there travel as wheels in .whl/ (datasets, rank-bm25, transformers 5.24).
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
exec > >(tee "$LOG") 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 HF_DATASETS_CACHE=/tmp/hfds TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, transformers, datasets, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'datasets', datasets.__version__, 'accelerate', accelerate.__version__, 'cuda', torch.cuda.is_available())"
date -u
echo "== 1. make demo's pipeline on CUDA (fp32)"
/usr/bin/time -f "demo wall %e s" python3 demo.py --run_dir /tmp/demo --data_dir /tmp/demo_data | grep -v "it/s\]" | tail -25
echo "== 2. klue-bert-base-sized random BERT (32k vocab trained on the demo corpus), bf16"
python3 tiny_model.py /tmp/demo_data/train.jsonl --config benchmarks/configs/bert-base-random.yaml --out /tmp/bert-base
for strategy in group_by_length random; do
  python3 run_post_training.py --model_name_or_path /tmp/bert-base --train_files /tmp/demo_data/train.jsonl \
    --output_dir /tmp/pt-$strategy --do_train --max_steps 150 --per_device_train_batch_size 32 --max_seq_length 240 \
    --bf16 --learning_rate 1e-4 --logging_steps 50 --save_strategy no --report_to none --disable_tqdm true \
    --dataloader_num_workers 2 --train_sampling_strategy $strategy 2>&1 | grep -E "train_samples_per_second|train_runtime|'loss'" | tail -5
done
echo "== 3. accelerate launch with configs/accelerate/single_gpu.yaml, then fine-tuning and prediction"
accelerate launch --config_file configs/accelerate/single_gpu.yaml run_post_training.py \
  --model_name_or_path /tmp/bert-base --train_files /tmp/demo_data/train.jsonl --output_dir /tmp/pt-acc \
  --do_train --max_steps 100 --per_device_train_batch_size 32 --max_seq_length 240 --learning_rate 1e-4 \
  --save_strategy no --report_to none --disable_tqdm true 2>&1 | grep -E "train_samples_per_second|Error|error" | tail -5
python3 run_fine_tuning.py --model_name_or_path /tmp/pt-acc --train_files /tmp/demo_data/train.jsonl \
  --test_groups /tmp/demo/groups/test.jsonl --output_dir /tmp/ft --do_train --do_predict --max_steps 300 \
  --per_device_train_batch_size 32 --max_seq_length 256 --bf16 --learning_rate 3e-5 --save_strategy no \
  --report_to none --disable_tqdm true 2>&1 | grep -E "samples_per_second|test_r10@1|test_mrr|bm25_r10@1 " | tail -8
nvidia-smi --query-gpu=memory.used --format=csv
