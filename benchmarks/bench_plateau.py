"""How fast does fine-tuning a pretrained encoder leave the ln 2 plateau? One run per variant, same data and steps.

Variants differ in one thing each from the old default (2-class cross-entropy on the pooled [CLS], learning
rate 5e-5 with 60 warm-up steps, 1 negative per positive): the loss (cross-entropy, BCE on one logit,
listwise over 1 positive + 3 negatives), the pooling ([CLS] pooler or mean) and the learning rate. Reported:
the first logged step at which the training loss falls below 0.60 (pointwise losses; a listwise loss over 4
candidates starts at ln 4 = 1.386 and has no such threshold), and dev R10@1 at every evaluation, the number
every variant shares. A variant whose run folder already holds a finished run is read, not rerun.

    python benchmarks/bench_plateau.py --model MODEL_DIR --train FILE --dev_groups FILE --steps 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

VARIANTS: dict[str, list[str]] = {
    "old default: cross_entropy, cls, lr 5e-5": ["--loss", "cross_entropy", "--learning_rate", "5e-5"],
    "cross_entropy, cls, lr 2e-4": ["--loss", "cross_entropy", "--learning_rate", "2e-4"],
    "bce (1 logit), cls, lr 5e-5": ["--loss", "bce", "--learning_rate", "5e-5"],
    "cross_entropy, mean, lr 5e-5": ["--loss", "cross_entropy", "--pooling", "mean", "--learning_rate", "5e-5"],
    "listwise, cls, lr 5e-5": ["--loss", "listwise", "--negatives_per_positive", "3", "--learning_rate", "5e-5"],
    "listwise, mean, lr 5e-5": [
        "--loss", "listwise", "--pooling", "mean", "--negatives_per_positive", "3", "--learning_rate", "5e-5",
    ],
    # sixth session: the default's learning rate and schedule
    "listwise, cls, lr 2e-4": ["--loss", "listwise", "--negatives_per_positive", "3", "--learning_rate", "2e-4"],
    "listwise, cls, lr 5e-5, constant after warm-up": [
        "--loss", "listwise", "--negatives_per_positive", "3", "--learning_rate", "5e-5",
        "--lr_scheduler_type", "constant_with_warmup",
    ],
}  # fmt: skip
LOSS_THRESHOLD = 0.60


def run_variant(name: str, extra: list[str], args: argparse.Namespace, out: Path) -> dict:
    """One fine-tuning run; pairs per step are the same for every variant (listwise: batch/4 groups of 4)."""
    listwise = "listwise" in extra
    batch = args.pairs_per_step // 4 if listwise else args.pairs_per_step
    command = [
        sys.executable, "run_fine_tuning.py",
        "--model_name_or_path", args.model, "--train_files", args.train,
        "--validation_groups", args.dev_groups, "--output_dir", str(out),
        "--do_train", "--do_eval", "--max_steps", str(args.steps), "--warmup_steps", str(args.warmup),
        "--per_device_train_batch_size", str(batch), "--per_device_eval_batch_size", "100",
        "--max_seq_length", str(args.max_seq_length), "--eval_strategy", "steps", "--eval_steps", str(args.eval_steps),
        "--logging_steps", "10", "--save_strategy", "no", "--load_best_model_at_end", "false",
        "--seed", str(args.seed), "--report_to", "none", "--disable_tqdm", "true", *extra,
    ]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.setdefault("OMP_NUM_THREADS", "2")
    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "trainer_state.json").is_file():  # written at the end of a run: a finished variant is kept
        with (out / "log.txt").open("w") as log:
            code = subprocess.call(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        if code != 0:
            raise SystemExit(f"error: {name} exited {code}; see {out / 'log.txt'}")
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    runtime = next((e["train_runtime"] for e in history if "train_runtime" in e), time.time() - start)
    losses = [(e["step"], e["loss"]) for e in history if "loss" in e]
    below = next((step for step, loss in losses if loss < LOSS_THRESHOLD), None)
    evals = [(e["step"], e["eval_r10@1"]) for e in history if "eval_r10@1" in e]
    return {"variant": name, "below_060": below, "evals": evals, "losses": losses, "seconds": runtime}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--train", required=True, help="training dialogues (JSONL)")
    parser.add_argument("--dev_groups", required=True, help="1-in-10 dev groups (mrs-data groups)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--eval_steps", type=int, default=50)
    parser.add_argument("--pairs_per_step", type=int, default=32)
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--variants", nargs="+", type=int, help="indices into the variant list (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "plateau")
    args = parser.parse_args(argv)
    names = list(VARIANTS)
    chosen = [names[i] for i in args.variants] if args.variants else names
    results, saved = [], args.out / "results.json"
    # every variant measured so far, this call's replacing older ones: a call with --variants adds to the file
    kept = {r["variant"]: r for r in json.loads(saved.read_text())} if saved.is_file() else {}
    for i, name in enumerate(chosen):
        print(f"[{i + 1}/{len(chosen)}] {name}", flush=True)
        result = run_variant(name, VARIANTS[name], args, args.out / f"v{names.index(name)}")
        results.append(result)
        kept[name] = result
        saved.with_suffix(".tmp").write_text(json.dumps(list(kept.values()), indent=1) + "\n")
        saved.with_suffix(".tmp").replace(saved)
        print(f"  loss < {LOSS_THRESHOLD} at step {result['below_060']}; dev R10@1 {result['evals']}", flush=True)
    steps = sorted({step for r in results for step, _ in r["evals"]})
    print("\n| variant | first step with training loss < 0.60 | " + " | ".join(f"R10@1 @{s}" for s in steps) + " | s |")
    print("|---|---|" + "---|" * (len(steps) + 1))
    for r in results:
        by_step = dict(r["evals"])
        cells = " | ".join(f"{by_step[s]:.3f}" if s in by_step else "-" for s in steps)
        below = r["below_060"] if r["below_060"] is not None else f"not within {args.steps}"
        if "listwise" in r["variant"]:
            below = "n/a (listwise)"
        print(f"| {r['variant']} | {below} | {cells} | {r['seconds']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
