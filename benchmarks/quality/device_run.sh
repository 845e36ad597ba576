#!/usr/bin/env bash
# The quality runs on the GPU machine (the device tool), after device_bundle.py pack here:
#   call 1 (carry runs/quality/dev/en): bash benchmarks/quality/device_run.sh en SECONDS
#   call 2 (carry runs/quality/dev/ko, same warm machine): bash benchmarks/quality/device_run.sh ko SECONDS
# Rows run as parallel processes on the one GPU (seeds one after another within a row), each under
# `timeout SECONDS`; results, logs and the table come back through $OUT.
set -u
suite=$1
limit=${2:-380}
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
keep=runs/quality/keep
start=$(date +%s)
if [ "$suite" = en ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $keep/site \
        runs/quality/dev/en/whl/*.whl || exit 1
fi
[ -d $keep/site ] || { echo "no $keep/site: the machine of call 1 was not kept"; exit 3; }
export PYTHONPATH=$PWD/$keep/site
python3 - <<'PY' | tee "$OUT/$1-env.txt"
import platform, torch, transformers, datasets, pyarrow, fsspec, tokenizers
print(platform.python_version(), "torch", torch.__version__, "transformers", transformers.__version__,
      "datasets", datasets.__version__, "pyarrow", pyarrow.__version__, "fsspec", fsspec.__version__,
      "tokenizers", tokenizers.__version__, "gpu", torch.cuda.get_device_name())
PY
python3 benchmarks/quality/device_bundle.py unpack "$suite" || exit 1
echo "unpacked in $(( $(date +%s) - start )) s"

run() {  # run ROW SEEDS... [--no_sanity]
    local row=$1; shift
    HF_DATASETS_CACHE=/tmp/hfds-$suite-$row timeout "$limit" python3 benchmarks/quality/run_quality.py run \
        --suite "$suite" --model "$model" --rows "$row" --seeds "$@" > "runs/quality/$suite-$row.log" 2>&1
    echo "$row exited $? after $(( $(date +%s) - start )) s"
}
if [ "$suite" = en ]; then
    model=runs/quality/minilm
    run ft-only 42 43 44 &
    run mlm 42 43 44 --no_sanity &
    run mlm-nsp 42 43 44 --no_sanity &
    run bert-fp 42 43 44 --no_sanity &
else
    model=runs/quality/me5
    run ft-only 42 &
    run bert-fp 42 --no_sanity &
fi
wait
nvidia-smi --query-gpu=name,memory.total --format=csv >> "$OUT/$suite-env.txt"
python3 benchmarks/quality/run_quality.py table --suite "$suite" | tee "$OUT/$suite-table.md"
tar czf "$OUT/$suite-results.tgz" runs/quality/$suite-*.log \
    $(find runs/quality/$suite -name '*.json' -o -name 'log.txt' | grep -v -e checkpoint -e tokenizer -e config.json)
echo "total $(( $(date +%s) - start )) s"
