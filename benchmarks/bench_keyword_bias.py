"""Keyword bias (issue 11): the same encoder and budget, four kinds of training negatives, two test sets.

Rows differ only in where a context's negatives come from (3 per context, listwise loss):

    random       utterances of other dialogues of the same corpus (the default)
    hard         1 in 3 a BM25 hard negative (character bigrams), the rest random
    hard-kiwi    the same with Kiwi morphemes as BM25 terms (which tokeniser mines better)
    adversarial  1 in 3 a rule-based perturbation of the context's own reply, the rest random
    both         1 in 3 hard, 1 in 3 adversarial, 1 in 3 random
    both-0.1     1 in 10 hard, 1 in 10 adversarial, the rest random (random negatives stay the majority)
    curriculum-X half the budget's steps on random negatives, then the other half on row X's negatives (hard,
                 adversarial or both), continuing from the first half's weights: a second run of
                 run_fine_tuning.py with --model_name_or_path set to the first one's output

Each row is scored on the usual 1-in-10 test groups (R10@1, MRR) and on an adversarial suite generated from the
same held-out dialogues (pairwise accuracy per perturbation type, BM25 beside it). Data and encoder are the
quality table's Korean suite: run ``python benchmarks/quality/run_quality.py prepare`` first, and build
multilingual-e5-small into runs/quality/me5 (../shared/tools/me5/README.md).

    python benchmarks/bench_keyword_bias.py --budget cpu --seeds 42 --suite_per_type 100
    python benchmarks/bench_keyword_bias.py --budget cpu --seeds 42 --suite_per_type 100 --rows curriculum-both
    python benchmarks/bench_keyword_bias.py --budget gpu --seeds 42 43 44
    python benchmarks/bench_keyword_bias.py --table

A finished row (its test and adversarial results exist) is read, not rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ko_mrs.adversarial import TYPES, make_adversarial_suite  # noqa: E402
from ko_mrs.dialogue_data import read_dialogues, write_jsonl  # noqa: E402
from ko_mrs.fine_tuning import POOLINGS  # noqa: E402
from ko_mrs.metrics import format_mean_sd  # noqa: E402

DATA = ROOT / "runs" / "quality" / "data" / "ko"
RUNS = ROOT / "runs" / "keyword"
# what a scored run writes: the test groups' metrics, then the adversarial suite's
RESULT_FILES = ("test_results.json", "adversarial_results.json")
ROWS: dict[str, list[str]] = {
    "random": [],
    "hard": ["--hard_negative_ratio", "0.34", "--hard_negative_tokenizer", "char_bigram"],
    "hard-kiwi": ["--hard_negative_ratio", "0.34", "--hard_negative_tokenizer", "kiwi"],
    "adversarial": ["--adversarial_negative_ratio", "0.34"],
    "both": ["--hard_negative_ratio", "0.33", "--adversarial_negative_ratio", "0.33"],
    "both-0.1": ["--hard_negative_ratio", "0.1", "--adversarial_negative_ratio", "0.1"],
}
# Harder negatives from the start keep a row at the listwise loss's chance value for most of the CPU budget
# (BENCHMARKS.md section 10); a curriculum row lets random negatives lift it off first. Its first half is one run a
# seed ("random-first-half"), shared by every curriculum row of that seed.
CURRICULA: dict[str, str] = {"curriculum-hard": "hard", "curriculum-adversarial": "adversarial",
                             "curriculum-both": "both"}  # fmt: skip
ALL_ROWS = [*ROWS, *CURRICULA]


def _cpu_budget(steps: int) -> list[str]:
    """The CPU budgets differ only in length: 8 contexts a step at length 64, a tenth of the steps warming up."""
    return ["--max_steps", str(steps), "--warmup_steps", str(steps // 10), "--per_device_train_batch_size", "8",
            "--max_seq_length", "64"]  # fmt: skip


BUDGETS = {
    # what fits on 2 CPU cores in about 15 minutes a row with multilingual-e5-small
    "cpu": _cpu_budget(200),
    # three times the steps (about 45 minutes a row): does a harder row's cost shrink with the budget?
    "cpu-long": _cpu_budget(600),
    # six times the steps (about 2 h 10 min a row on one thread): does the trend reach the targets?
    "cpu-1200": _cpu_budget(1200),
    # a GPU: the Korean quality suite's own fine-tuning budget (groups of 4, so 4x its pairs)
    "gpu": ["--max_steps", "400", "--warmup_steps", "40", "--per_device_train_batch_size", "32", "--max_seq_length",
            "128", "--bf16", "true"],
    # plumbing only: 2 steps
    "smoke": ["--max_steps", "2", "--per_device_train_batch_size", "2", "--max_seq_length", "64"],
}  # fmt: skip


def test_files() -> list[Path]:
    files = sorted(DATA.glob("*/test.jsonl"))
    if not files:
        raise SystemExit(f"error: no held-out Korean dialogues under {DATA}: run run_quality.py prepare")
    return files


def suite(per_type: int | None) -> Path:
    """The adversarial suite of the held-out Korean dialogues (written once, seed 0); ``per_type`` caps each type's
    pairs (the first ones in file order) for a CPU budget."""
    full = RUNS / "suite.jsonl"
    if not full.is_file():
        dialogues, _ = read_dialogues(test_files())
        write_jsonl((p.to_json() for p in make_adversarial_suite(list(dialogues), seed=0)), full)
    if per_type is None:
        return full
    path = RUNS / f"suite-{per_type}-per-type.jsonl"
    if not path.is_file():
        seen: Counter[str] = Counter()
        kept = []
        for line in full.read_text(encoding="utf-8").splitlines():
            kind = json.loads(line)["type"]
            if seen[kind] < per_type:
                seen[kind] += 1
                kept.append(line + "\n")
        path.write_text("".join(kept), encoding="utf-8")
    return path


def budget_dir(args: argparse.Namespace) -> str:
    """Rows of one budget and pooling share a folder, so one table never mixes them."""
    return args.budget if args.pooling == "cls" else f"{args.budget}-{args.pooling}"


def _scored(out: Path) -> bool:
    """Whether the run in ``out`` wrote both its results: the groups' and the suite's."""
    return all((out / name).is_file() for name in RESULT_FILES)


def _fine_tune(out: Path, seed: int, args: argparse.Namespace, extra: list[str], *, tested: bool = True) -> None:
    """One run_fine_tuning.py run on the budget, its log in ``out``; ``extra`` comes last, so it wins. ``tested``:
    score the test groups and the suite at the end (a curriculum's first half is not)."""
    tests = ["--test_groups", str(DATA / "test_groups.jsonl"), "--adversarial_files", str(suite(args.suite_per_type))]
    command = [
        sys.executable, "run_fine_tuning.py", str(ROOT / "benchmarks" / "quality" / "configs" / "ko_fine_tuning.yaml"),
        "--model_name_or_path", args.model, "--output_dir", str(out), "--seed", str(seed),
        *(tests if tested else ["--do_predict", "false"]), "--negatives_per_positive", "3", "--loss", "listwise",
        "--pooling", args.pooling, *BUDGETS[args.budget], *extra,
    ]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    with (out / "log.txt").open("w") as log:
        code = subprocess.call(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f"error: {out.name} exited {code}; see {out / 'log.txt'}")


def run_row(row: str, seed: int, args: argparse.Namespace) -> Path:
    folder = RUNS / budget_dir(args)
    out = folder / f"{row}-s{seed}"
    if _scored(out):
        return out
    if row in ROWS:
        _fine_tune(out, seed, args, ROWS[row])
        return out
    budget = BUDGETS[args.budget]
    half = str(int(budget[budget.index("--max_steps") + 1]) // 2)
    first = folder / f"random-first-half-s{seed}"
    if not (first / "train_results.json").is_file():
        _fine_tune(first, seed, args, ["--max_steps", half], tested=False)
    # a different data order in the second half: the same seed would feed it the first half's contexts again
    second = ["--model_name_or_path", str(first), "--max_steps", half, "--data_seed", str(seed + 1000)]
    _fine_tune(out, seed, args, [*second, *ROWS[CURRICULA[row]]])
    return out


class Result(NamedTuple):
    """One finished row and seed: the run script's test metrics and its adversarial-suite metrics."""

    row: str
    seed: int
    test: dict[str, float]
    adversarial: dict[str, float]


def finished(folder: Path) -> list[Result]:
    """Rows and seeds under ``folder`` whose runs wrote both results, in the order of ``ALL_ROWS`` then seed."""
    results = []
    for out in folder.glob("*-s*"):
        row, seed = out.name.rsplit("-s", 1)
        if row in ALL_ROWS and _scored(out):
            test, adversarial = (json.loads((out / name).read_text()) for name in RESULT_FILES)
            results.append(Result(row, int(seed), test, adversarial))
    return sorted(results, key=lambda r: (ALL_ROWS.index(r.row), r.seed))


def _accuracies(adv: dict[str, float], prefix: str = "") -> list[float | None]:
    """Overall, then per type; None where the suite had no pair of that type."""
    return [adv[f"{prefix}accuracy"], *(adv.get(f"{kind}_{prefix}accuracy") for kind in TYPES)]


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cells(test: dict[str, float], adv: dict[str, float], prefix: str = "") -> list[str]:
    """R10@1, MRR, then the pairwise accuracies; ``prefix`` "bm25_" reads the BM25 baseline's."""
    accuracies = ["-" if a is None else f"{a:.3f}" for a in _accuracies(adv, prefix)]
    return [f"{test[f'test_{prefix}r10@1']:.3f}", f"{test[f'test_{prefix}mrr']:.3f}", *accuracies]


def table(results: list[Result]) -> str:
    """One line a finished row and seed: R10@1 and MRR on the groups, pairwise accuracy per type on the suite."""
    head = ["row", "seed", "R10@1", "MRR", "adversarial", *TYPES]
    lines = [_line(head), "|" + "---|" * len(head)]
    lines += [_line([r.row, str(r.seed), *_cells(r.test, r.adversarial)]) for r in results]
    if results:  # BM25 scores the same groups and suite in every run
        lines.append(_line(["BM25", "-", *_cells(results[-1].test, results[-1].adversarial, "bm25_")]))
    return "\n".join(lines)


def mean_table(results: list[Result]) -> str:
    """Mean ± spread over seeds a row, and its R10@1 against ``random`` paired by seed (the issue's 0.01 target):
    the mean of (row - random) over the seeds both ran."""
    head = ["row", "seeds", "R10@1", "R10@1 - random", "adversarial", *TYPES]
    lines = [_line(head), "|" + "---|" * len(head)]
    random = {r.seed: r.test["test_r10@1"] for r in results if r.row == "random"}
    for row in ALL_ROWS:
        mine = [r for r in results if r.row == row]
        if not mine:
            continue
        paired = [r.test["test_r10@1"] - random[r.seed] for r in mine if r.seed in random]
        columns = zip(*(_accuracies(r.adversarial) for r in mine), strict=True)
        present = ([a for a in column if a is not None] for column in columns)
        accuracies = [format_mean_sd(values) if values else "-" for values in present]
        cells = [row, str(len(mine)), format_mean_sd([r.test["test_r10@1"] for r in mine])]
        cells += ["-" if row == "random" or not paired else f"{format_mean_sd(paired, signed=True)} (n={len(paired)})"]
        lines.append(_line(cells + accuracies))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "runs" / "quality" / "me5"), help="a pretrained encoder folder")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="cpu")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument(
        "--pooling",
        choices=POOLINGS,
        default="cls",
        help="the classifier's input: the pooled [CLS] (the default) or the mean of the last layer",
    )
    parser.add_argument("--rows", nargs="+", choices=ALL_ROWS, default=list(ROWS))
    parser.add_argument("--suite_per_type", type=int, help="score at most this many suite pairs per type")
    parser.add_argument("--table", action="store_true", help="only print the table of finished rows")
    args = parser.parse_args(argv)
    if not args.table:
        if not Path(args.model, "config.json").is_file():
            raise SystemExit(f"error: no encoder at {args.model}: build it with ../shared/tools/me5/README.md")
        for seed in args.seeds:
            for row in args.rows:
                print(f"[{row} seed {seed}] -> {run_row(row, seed, args)}", flush=True)
    results = finished(RUNS / budget_dir(args))
    print(table(results))
    print()
    print(mean_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
