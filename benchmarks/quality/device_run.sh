#!/usr/bin/env bash
# The quality table on the GPU machine (the device tool), after `device_bundle.py pack` here:
#   call 1: run(command="bash benchmarks/quality/device_run.sh en 420", carry=["runs/quality/dev/en"], timeout_s=540)
#   call 2, same warm machine, only if device time is left:
#           run(command="bash benchmarks/quality/device_run.sh ko 240", carry=["runs/quality/dev/ko"], timeout_s=330)
# Each row and seed of the suite (`run_quality.py jobs`) is one job; JOBS of them share the one GPU at a time, all
# rows of seed 42 first, so a call cut short leaves whole seeds. No job starts after SECONDS, and one still running
# then is stopped. Finished stages are kept on the machine, so the same call again (while it is warm) goes on where
# the last one stopped. Results, per-job times, logs and the table come back through $OUT.
set -u
suite=$1
limit=${2:-420}
jobs=${3:-12}
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS=1
keep=runs/quality/keep
start=$(date +%s)
export DEADLINE=$((start + limit))
if [ "$suite" = en ] && [ -d runs/quality/dev/en/whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $keep/site \
        runs/quality/dev/en/whl/*.whl || exit 1
fi
[ -d $keep/site ] && export PYTHONPATH=$PWD/$keep/site
python3 - <<'PY' | tee "$OUT/$suite-env.txt"
import platform, torch, transformers, datasets, bm25s
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
print(platform.python_version(), "torch", torch.__version__, "transformers", transformers.__version__,
      "datasets", datasets.__version__, "bm25s", bm25s.__version__, "gpu", gpu)
PY
if [ "$suite" = en ]; then model=runs/quality/minilm; else model=runs/quality/me5; fi
[ -f "$model/config.json" ] || python3 benchmarks/quality/device_bundle.py unpack "$suite" || exit 1
echo "unpacked in $(( $(date +%s) - start )) s"

job() {  # job ROW SEED: one row and seed; the first fine-tune-only job also runs the untrained sanity row
    local row=$1 seed=$2 left sanity=--no_sanity t0
    left=$((DEADLINE - $(date +%s)))
    [ "$left" -lt 30 ] && { echo "$row $seed: not started, $left s left"; return 0; }
    [ "$row $seed" = "ft-only 42" ] && sanity=
    t0=$(date +%s)
    HF_DATASETS_CACHE=/tmp/hfds-$SUITE-$row-$seed timeout "$left" python3 benchmarks/quality/run_quality.py run \
        --suite "$SUITE" --model "$MODEL" --rows "$row" --seeds "$seed" $sanity ${SMOKE:+--smoke} \
        > "runs/quality/$SUITE-$row-s$seed.log" 2>&1
    echo "$row $seed: exit $? after $(( $(date +%s) - t0 )) s"
}
export -f job
export SUITE=$suite MODEL=$model
python3 benchmarks/quality/run_quality.py jobs --suite "$suite" \
    | xargs -P "$jobs" -L 1 bash -c 'job "$0" "$1"' | tee "$OUT/$suite-jobs.txt"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv >> "$OUT/$suite-env.txt"
python3 benchmarks/quality/run_quality.py table --suite "$suite" ${SMOKE:+--smoke} | tee "$OUT/$suite-table.md"
results=runs/quality/${SMOKE:+smoke/}$suite
tar czf "$OUT/$suite-results.tgz" runs/quality/$suite-*.log \
    $(find "$results" \( -name '*.json' -o -name 'log.txt' \) | grep -v -e checkpoint -e tokenizer -e config.json)
echo "total $(( $(date +%s) - start )) s"
