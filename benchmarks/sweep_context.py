"""Choose the context length: fine-tune and evaluate over max_turns x max_seq_length, quality beside speed.

Each cell fine-tunes the same model on the same data with the same budget, then prints test R10@1 / MRR beside
training pairs/s and ranking contexts/s (``ResponseSelector.rank_batch`` over the test groups, which cuts
contexts where fine-tuning cut them). Pick the cheapest cell that keeps the quality. A finished cell's folder is
read, not rerun. On your own data:

    python benchmarks/sweep_context.py --model runs/post-trained --train data/train.jsonl \\
        --test_groups data/test_groups.jsonl --out runs/sweep            # the full grid: 6 x 3 cells
    python benchmarks/sweep_context.py ... --quick                        # max_turns {1, 3, all} x {128, 256}
    python benchmarks/sweep_context.py --mean_of runs/sweep runs/sweep_s43              # each cell over seeds

Any other fine-tuning argument goes after ``--``, e.g. ``-- --pooling mean --loss listwise``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ko_mrs.dialogue_data import read_eval_groups  # noqa: E402
from ko_mrs.metrics import format_mean_sd  # noqa: E402
from ko_mrs.ranking import ResponseSelector  # noqa: E402

ALL = 0  # max_turns 0 in the grid: every turn (no --max_turns)
MAX_TURNS = (1, 2, 3, 5, 10, ALL)
MAX_SEQ_LENGTHS = (128, 256, 512)
QUICK = ((1, 3, ALL), (128, 256))
GROUPS_PER_STEP, CANDIDATES = 16, 4  # listwise: 16 contexts x (1 positive + 3 negatives) = 64 pairs a step


def cell_folder(max_turns: int, max_seq_length: int) -> str:
    return f"turns{max_turns or 'all'}_len{max_seq_length}"


def cell(args: argparse.Namespace, max_turns: int, max_seq_length: int) -> dict:
    out = args.out / cell_folder(max_turns, max_seq_length)
    if not (out / "test_results.json").is_file():
        command = [
            sys.executable, "run_fine_tuning.py",
            "--model_name_or_path", args.model, "--train_files", *args.train, "--test_groups", args.test_groups,
            "--output_dir", str(out), "--do_train", "--do_predict", "--max_steps", str(args.steps),
            "--max_seq_length", str(max_seq_length), *(["--max_turns", str(max_turns)] if max_turns else []),
            "--loss", "listwise", "--negatives_per_positive", str(CANDIDATES - 1),
            "--per_device_train_batch_size", str(GROUPS_PER_STEP), "--per_device_eval_batch_size", "100",
            "--learning_rate", str(args.learning_rate), "--lr_scheduler_type", "constant_with_warmup",
            "--warmup_steps", "20", "--weight_decay", "0.01", "--save_strategy", "no", "--logging_steps", "50",
            "--seed", str(args.seed), "--report_to", "none", "--disable_tqdm", "true", "--bm25_baseline", "false",
            *args.extra,
        ]  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        env.setdefault("OMP_NUM_THREADS", "1")
        with (out / "log.txt").open("w") as log:
            code = subprocess.call(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        if code != 0:
            raise SystemExit(f"error: cell {out.name} exited {code}; see {out / 'log.txt'}")
    test = json.loads((out / "test_results.json").read_text())
    if not (out / "ranking_speed.json").is_file():
        (out / "ranking_speed.json").write_text(json.dumps(ranking_speed(out, args.test_groups)))
    speed = json.loads((out / "ranking_speed.json").read_text())
    return {
        "max_turns": max_turns or "all",
        "max_seq_length": max_seq_length,
        "r10@1": test["test_r10@1"],
        "mrr": test["test_mrr"],
        "train_pairs_per_s": train_pairs_per_s(out),
        "rank_contexts_per_s": speed["contexts_per_s"],
    }


def train_pairs_per_s(cell_dir: Path) -> float:
    """Training pairs a second: the steps the cell ran x 64 pairs, over its training time."""
    steps = json.loads((cell_dir / "trainer_state.json").read_text())["global_step"]
    seconds = json.loads((cell_dir / "train_results.json").read_text())["train_runtime"]
    return steps * GROUPS_PER_STEP * CANDIDATES / seconds


def mean_table(outs: list[Path]) -> str:
    """Each cell's R10@1 and MRR as mean ± standard deviation over runs with other seeds (one ``--out`` per seed);
    a cell counts the seeds that finished it. Speeds are the mean over those runs."""
    lines = [
        "| max_turns | max_seq_length | seeds | R10@1 | MRR | training pairs/s | ranking contexts/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for max_seq_length in MAX_SEQ_LENGTHS:
        for max_turns in MAX_TURNS:
            name = cell_folder(max_turns, max_seq_length)
            done = [out / name for out in outs if (out / name / "ranking_speed.json").is_file()]
            if not done:
                continue
            tests = [json.loads((d / "test_results.json").read_text()) for d in done]
            ranks = [json.loads((d / "ranking_speed.json").read_text())["contexts_per_s"] for d in done]
            cells = [format_mean_sd([t[f"test_{m}"] for t in tests]) for m in ("r10@1", "mrr")]
            pairs = statistics.mean(train_pairs_per_s(d) for d in done)
            lines.append(
                f"| {max_turns or 'all'} | {max_seq_length} | {len(done)} | {cells[0]} | {cells[1]} | {pairs:.0f} "
                f"| {statistics.mean(ranks):.1f} |"
            )
    return "\n".join(lines)


def ranking_speed(model: Path, groups_file: str) -> dict[str, float]:
    """Contexts ranked per second over the test groups (10 candidates each), after a warm-up batch."""
    selector = ResponseSelector.from_pretrained(str(model), device="cpu", batch_size=100)
    groups = read_eval_groups(groups_file)
    list(selector.rank_batch(groups[:10]))
    start = time.perf_counter()
    for _ in selector.rank_batch(groups):
        pass
    return {"contexts_per_s": len(groups) / (time.perf_counter() - start), "contexts": len(groups)}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="the model every cell fine-tunes (e.g. a post-trained one)")
    parser.add_argument("--train", nargs="+", help="training dialogues (JSONL or .txt)")
    parser.add_argument("--test_groups", help="fixed test groups (mrs-data groups)")
    parser.add_argument("--out", type=Path, default=Path("runs/sweep_context"))
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps per cell (64 pairs each)")
    parser.add_argument("--learning_rate", type=float, default=1e-3, help="1e-3 for a tiny model; 2e-5 for BERT")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max_turns", nargs="+", type=int, default=list(MAX_TURNS), help="0 = all turns")
    parser.add_argument("--max_seq_length", nargs="+", type=int, default=list(MAX_SEQ_LENGTHS))
    parser.add_argument("--quick", action="store_true", help="max_turns {1, 3, all} x max_seq_length {128, 256}")
    parser.add_argument("--mean_of", nargs="+", type=Path, help="only print each cell's mean over these --out folders")
    args = parser.parse_args(argv)
    if args.mean_of:
        print(mean_table(args.mean_of))
        return 0
    if not (args.model and args.train and args.test_groups):
        parser.error("--model, --train and --test_groups are required (or --mean_of)")
    args.extra = extra
    turns, lengths = QUICK if args.quick else (args.max_turns, args.max_seq_length)
    print("| max_turns | max_seq_length | R10@1 | MRR | training pairs/s | ranking contexts/s |")
    print("|---|---|---|---|---|---|")
    for max_seq_length in lengths:
        for max_turns in turns:
            r = cell(args, max_turns, max_seq_length)
            print(
                f"| {r['max_turns']} | {r['max_seq_length']} | {r['r10@1']:.3f} | {r['mrr']:.3f} "
                f"| {r['train_pairs_per_s']:.0f} | {r['rank_contexts_per_s']:.1f} |",
                flush=True,
            )
    print(f"\n{args.steps} steps x {GROUPS_PER_STEP * CANDIDATES} pairs a cell; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
