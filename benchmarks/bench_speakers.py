"""Speaker ablation: no speakers / speaker tokens / speaker embeddings, each with and without turn distance.

Every row: the same encoder (a tiny BERT built from the corpus, configs/tiny-demo.yaml with 512 positions), the
same data and the same budget: BERT-FP post-training then fine-tuning, both with the row's features on, on the
demo's two-party dialogues and the multi-party ones (``demo_corpus --multi-party``) together. Each fine-tuned
model is scored on two test sets: the two-party demo groups, and the multi-party groups, where the reply answers
someone other than the last speaker and one negative is the other thread's next turn (the right content said by
the wrong speaker). ``wrong-speaker wins`` is the share of multi-party groups where that negative outranks the
true reply. A finished row's folder is read, not rerun: rows can run in parallel processes (``--rows``), and a
last run over all rows prints the whole table.

    python benchmarks/bench_speakers.py --out runs/bench_speakers --post_steps 150 --steps 300
    python benchmarks/bench_speakers.py --mean_of runs/bench_speakers runs/bench_speakers_s43   # over seeds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ko_mrs.demo_corpus import write_demo_corpus, write_multiparty_corpus  # noqa: E402
from ko_mrs.dialogue_data import build_eval_groups, read_dialogues, read_eval_groups, write_jsonl  # noqa: E402
from ko_mrs.metrics import compute_ranking_metrics, format_mean_sd  # noqa: E402
from ko_mrs.ranking import ResponseSelector  # noqa: E402
from ko_mrs.tiny_model import build_tiny_model  # noqa: E402

ROWS: dict[str, tuple[str, str]] = {  # name: (speaker_encoding, turn_distance_encoding)
    "no speakers": ("none", "none"),
    "no speakers + turn-distance tokens": ("none", "tokens"),
    "speaker tokens": ("tokens", "none"),
    "speaker tokens + turn-distance tokens": ("tokens", "tokens"),
    "speaker embeddings": ("embeddings", "none"),
    "speaker embeddings + turn-distance embeddings": ("embeddings", "embeddings"),
}


def prepare(out: Path, n_dialogues: int) -> dict[str, Path]:
    """The two corpora, their test groups, and the tiny encoder (built once, reused by every row)."""
    data = out / "data"
    if not (data / "done").is_file():
        two = write_demo_corpus(data / "two-party", n_dialogues=n_dialogues)
        test, _ = read_dialogues(two["test"])
        write_jsonl(build_eval_groups(test, seed=0), data / "two-party" / "test_groups.jsonl")
        write_multiparty_corpus(data / "multi-party", n_dialogues=n_dialogues)
        settings = yaml.safe_load((ROOT / "configs" / "tiny-demo.yaml").read_text(encoding="utf-8"))
        settings["model"]["max_position_embeddings"] = 512
        (data / "tiny.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
        build_tiny_model([data / "two-party" / "train.jsonl", data / "multi-party" / "train.jsonl"],
                         data / "tiny.yaml", data / "tiny-bert")  # fmt: skip
        (data / "done").write_text("")
    return {
        "model": data / "tiny-bert",
        "train": [data / "two-party" / "train.jsonl", data / "multi-party" / "train.jsonl"],
        "two-party": data / "two-party" / "test_groups.jsonl",
        "multi-party": data / "multi-party" / "test_groups.jsonl",
    }


def run_script(script: str, args: list[str], out: Path) -> float:
    """Run a stage as its own command (as a user would); its seconds. A finished stage is kept."""
    if (out / "all_results.json").is_file() and (out / "config.json").is_file():
        return json.loads((out / "seconds.json").read_text())["seconds"]
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.setdefault("OMP_NUM_THREADS", "1")
    start = time.time()
    with (out / "log.txt").open("w") as log:
        code = subprocess.call([sys.executable, script, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f"error: {script} exited {code}; see {out / 'log.txt'}")
    seconds = time.time() - start
    (out / "seconds.json").write_text(json.dumps({"seconds": seconds}))
    return seconds


def evaluate(model: Path, groups_file: Path) -> dict[str, float]:
    """R10@1 / MRR of a fine-tuned model through ResponseSelector (speakers given), and wrong-speaker wins."""
    selector = ResponseSelector.from_pretrained(str(model), device="cpu", batch_size=100)
    groups = read_eval_groups(groups_file)
    ids, scores, labels, wrong_wins = [], [], [], []
    for g, ranked in enumerate(selector.rank_batch(groups)):
        by_id = {hit["corpus_id"]: hit["score"] for hit in ranked["ranking"]}
        ids += [g] * len(by_id)
        scores += [by_id[i] for i in range(len(by_id))]
        labels += groups[g]["labels"]
        if "wrong_speaker_candidate" in groups[g]:
            wrong_wins.append(by_id[groups[g]["wrong_speaker_candidate"]] > by_id[groups[g]["labels"].index(1)])
    metrics = compute_ranking_metrics(ids, scores, labels)
    if wrong_wins:
        metrics["wrong_speaker_wins"] = sum(wrong_wins) / len(wrong_wins)
    return metrics


def row_folder(name: str) -> str:
    return name.replace(" ", "_").replace("+", "and")


def run_row(name: str, encodings: tuple[str, str], files: dict, args: argparse.Namespace) -> dict:
    folder = args.out / row_folder(name)
    if (folder / "result.json").is_file():  # a finished row (e.g. run by another process with --rows)
        return json.loads((folder / "result.json").read_text())
    features = ["--speaker_encoding", encodings[0], "--turn_distance_encoding", encodings[1]]
    common = ["--max_seq_length", str(args.max_seq_length), "--seed", str(args.seed), "--report_to", "none",
              "--disable_tqdm", "true", "--save_strategy", "no", "--logging_steps", "50"]  # fmt: skip
    train = ["--train_files", *map(str, files["train"])]
    post_seconds = run_script(
        "run_post_training.py",
        ["--model_name_or_path", str(files["model"]), *train, "--output_dir", str(folder / "post"), "--do_train",
         "--max_steps", str(args.post_steps), "--learning_rate", "1e-3", "--warmup_steps", "20",
         "--per_device_train_batch_size", "32", *common, *features],
        folder / "post",
    )  # fmt: skip
    fine_seconds = run_script(
        "run_fine_tuning.py",
        ["--model_name_or_path", str(folder / "post"), *train, "--output_dir", str(folder / "fine"), "--do_train",
         "--max_steps", str(args.steps), "--learning_rate", "1e-3", "--lr_scheduler_type", "constant_with_warmup",
         "--warmup_steps", "20", "--weight_decay", "0.01", "--loss", "listwise", "--pooling", "mean",
         "--negatives_per_positive", "3", "--per_device_train_batch_size", "16", *common, *features],
        folder / "fine",
    )  # fmt: skip
    result = {"row": name, "post_s": post_seconds, "fine_s": fine_seconds}
    for test in ("two-party", "multi-party"):
        result[test] = evaluate(folder / "fine", files[test])
    (folder / "result.json").write_text(json.dumps(result, indent=1))
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| row | two-party R10@1 | two-party MRR | multi-party R10@1 | multi-party MRR | wrong-speaker wins "
        "| post + fine s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        two, multi = r["two-party"], r["multi-party"]
        lines.append(
            f"| {r['row']} | {two['r10@1']:.3f} | {two['mrr']:.3f} | {multi['r10@1']:.3f} | {multi['mrr']:.3f} "
            f"| {multi['wrong_speaker_wins']:.3f} | {r['post_s']:.0f} + {r['fine_s']:.0f} |"
        )
    return "\n".join(lines)


def mean_table(outs: list[Path]) -> str:
    """Mean ± standard deviation of each row over runs with other seeds (one ``--out`` folder per seed)."""
    columns = [("two-party", "r10@1"), ("two-party", "mrr"), ("multi-party", "r10@1"), ("multi-party", "mrr"),
               ("multi-party", "wrong_speaker_wins")]  # fmt: skip
    lines = [
        "| row | seeds | two-party R10@1 | two-party MRR | multi-party R10@1 | multi-party MRR | wrong-speaker wins |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ROWS:
        results = [out / row_folder(name) / "result.json" for out in outs]
        runs = [json.loads(path.read_text()) for path in results if path.is_file()]
        if not runs:
            continue
        cells = [format_mean_sd([r[test][metric] for r in runs]) for test, metric in columns]
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_speakers"))
    parser.add_argument("--n_dialogues", type=int, default=3000, help="per corpus (two-party and multi-party)")
    parser.add_argument("--post_steps", type=int, default=150)
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps (16 groups of 4 each)")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), help="default: all")
    parser.add_argument("--mean_of", nargs="+", type=Path, help="only print each row's mean over these --out folders")
    args = parser.parse_args(argv)
    if args.mean_of:
        print(mean_table(args.mean_of))
        return 0
    files = prepare(args.out, args.n_dialogues)
    results = []
    for name in args.rows or ROWS:
        results.append(run_row(name, ROWS[name], files, args))
        print(f"{name}: {json.dumps(results[-1])}", flush=True)
    groups = {test: len(read_eval_groups(files[test])) for test in ("two-party", "multi-party")}
    print(f"\ntest groups: {groups}; load average {os.getloadavg()[0]:.1f}\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
