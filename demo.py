"""`make demo`: the whole ko-mrs pipeline, offline, on the demo corpus the project writes itself.

1. write the synthetic Korean demo corpus and show the data layer (counts, windows, a group);
2. build a tiny BERT + WordPiece tokenizer from the corpus (configs/tiny-demo.yaml);
3. BERT-FP post-training (MLM + URC);
4. fine-tuning, then R10@k on fixed test groups beside BM25 on the same groups;
5. ranking of the README's car-buying example.

The tiny model is trained from scratch in minutes on synthetic dialogues: it learns them (R10@1 about 0.6 on
held-out demo dialogues, BENCHMARKS.md section 9), but says nothing about real Korean data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from ko_mrs import ResponseSelector  # noqa: E402
from ko_mrs.demo_corpus import README_EXAMPLE, write_demo_corpus  # noqa: E402
from ko_mrs.dialogue_data import build_eval_groups, read_dialogues, write_jsonl  # noqa: E402
from ko_mrs.metrics import format_metrics_table  # noqa: E402
from ko_mrs.tiny_model import build_tiny_model  # noqa: E402

# The corpus the demo writes: enough distinct dialogues that a model trained from scratch learns to match a reply
# to its context instead of memorising a few hundred dialogues (480 left it at chance; BENCHMARKS.md, section 9).
DEMO_DIALOGUES = 3000

NOTICE = (
    "NOTE: the demo model is a tiny BERT trained from scratch in minutes on a synthetic corpus the project\n"
    "writes itself. It shows the whole pipeline learning; it says nothing about quality on real dialogues.\n"
    "For that see the quality table in BENCHMARKS.md, and for real use the klue/bert-base configs in configs/."
)


ROOT = Path(__file__).resolve().parent
TINY_CONFIG = ROOT / "configs" / "tiny-demo.yaml"
POST_CONFIG = ROOT / "configs" / "post_training" / "tiny.yaml"
FINE_CONFIG = ROOT / "configs" / "fine_tuning" / "tiny.yaml"


def run_script(script: str, args: list[str], results: Path) -> dict[str, float]:
    """Run a stage's script as its own command, as a user would, and return the metrics it saved.

    A stage whose metrics file exists finished on these inputs (:func:`set_aside_stale_runs` moved any other away;
    the scripts write it after the final model): it is reused, not resumed. Resuming a finished run retrains from
    its last kept checkpoint, which with ``load_best_model_at_end`` can be the best one, steps before the end.
    """
    if results.is_file():
        print(f"reusing {results.parent}/: trained on these inputs already (delete the folder to train it again)")
    else:
        subprocess.run([sys.executable, str(ROOT / script), *args], check=True)
    return json.loads(results.read_text(encoding="utf-8"))


def set_aside_stale_runs(run_dir: Path, inputs: list[Path], settings: dict, stages: list[Path]) -> list[Path]:
    """Move stage folders trained on other inputs to ``run_dir/previous/``; return the folders moved.

    A stage resumes from its last checkpoint, so after an edit of the corpus, a config or the seed, a rerun would
    otherwise continue (or just reprint) a model of the old inputs. Folders of an unknown origin (no fingerprint
    yet) are set aside too; those of the same inputs stay, so an interrupted demo resumes.
    """
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in inputs:
        digest.update(path.read_bytes())
    fingerprint, record = digest.hexdigest(), run_dir / "inputs.sha256"
    moved = []
    if not record.is_file() or record.read_text(encoding="utf-8").strip() != fingerprint:
        for stage in (stage for stage in stages if stage.exists()):
            target = run_dir / "previous" / stage.name
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            moved.append(stage.rename(target))
    run_dir.mkdir(parents=True, exist_ok=True)
    record.with_suffix(".tmp").write_text(fingerprint + "\n", encoding="utf-8")
    record.with_suffix(".tmp").replace(record)
    return moved


def banner(text: str) -> None:
    print(f"\n{'=' * 100}\n{text}\n{'=' * 100}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="data/demo")
    parser.add_argument("--run_dir", default="runs/demo")
    parser.add_argument("--quick", action="store_true", help="a few steps per stage (used by the tests)")
    parser.add_argument("--seed", type=int, default=42, help="training seed of both stages (the corpus stays the same)")
    args = parser.parse_args(argv)
    hf_logging.set_verbosity_warning()
    data_dir, run_dir = Path(args.data_dir), Path(args.run_dir)
    started = time.time()
    print(NOTICE)

    banner("1/5  Demo corpus and data layer")
    files = write_demo_corpus(data_dir, n_dialogues=DEMO_DIALOGUES)
    datasets.disable_progress_bars()
    for split, path in files.items():
        dialogues, (report,) = read_dialogues(path)
        print(f"{split:10s} {report}; {report.utterances - report.dialogues} post-training windows (k=3)")
    test_dialogues, _ = read_dialogues(files["test"])
    validation_dialogues, _ = read_dialogues(files["validation"])
    groups_dir = run_dir / "groups"
    write_jsonl(build_eval_groups(validation_dialogues, seed=0), groups_dir / "validation.jsonl")
    test_groups = build_eval_groups(test_dialogues, seed=0)
    write_jsonl(test_groups, groups_dir / "test.jsonl")
    example = test_groups[0]
    print(f"\nan evaluation group ({example['group_id']}), 1 positive + 9 negatives:")
    for turn in example["context"]:
        print(f"   context : {turn}")
    for label, candidate in zip(example["labels"], example["candidates"], strict=True):
        print(f"   {'TRUE' if label else '    '}    : {candidate}")

    banner("2/5  Offline tiny BERT and WordPiece tokenizer (configs/tiny-demo.yaml)")
    tiny = build_tiny_model([files["train"]], TINY_CONFIG, run_dir / "tiny-bert")
    print(f"saved to {tiny}")
    datasets.enable_progress_bars()

    stage_args = ["--max_steps", "4", "--logging_steps", "2"] if args.quick else []
    stage_args += ["--seed", str(args.seed)]
    post_dir, fine_dir = run_dir / "post-trained", run_dir / "fine-tuned"
    inputs = [*files.values(), TINY_CONFIG, POST_CONFIG, FINE_CONFIG]
    for stale in set_aside_stale_runs(run_dir, inputs, {"args": stage_args}, [post_dir, fine_dir]):
        print(f"the corpus, a config or the settings changed since {stale.name}/ was trained: moved it to {stale}")
    banner("3/5  BERT-FP post-training: MLM + utterance relevance classification")
    post = run_script(
        "run_post_training.py",
        [
            str(POST_CONFIG),
            "--model_name_or_path", str(tiny),
            "--train_files", str(files["train"]),
            "--validation_files", str(files["validation"]),
            "--output_dir", str(post_dir),
            *stage_args,
        ],
        post_dir / "eval_results.json",
    )  # fmt: skip
    print({k: round(v, 4) for k, v in post.items() if k.startswith("eval_")})

    banner("4/5  Fine-tuning and evaluation on fixed 1-in-10 test groups")
    metrics = run_script(
        "run_fine_tuning.py",
        [
            str(FINE_CONFIG),
            "--model_name_or_path", str(post_dir),
            "--train_files", str(files["train"]),
            "--validation_groups", str(groups_dir / "validation.jsonl"),
            "--test_groups", str(groups_dir / "test.jsonl"),
            "--output_dir", str(fine_dir),
            *stage_args,
        ],
        fine_dir / "test_results.json",
    )  # fmt: skip
    keys = ("r10@1", "r10@2", "r10@5", "mrr")
    table = {
        "tiny BERT-FP + fine-tune": {k: metrics[f"test_{k}"] for k in keys},
        "BM25": {k: metrics[f"test_bm25_{k}"] for k in keys},
    }
    print(f"\ntest groups: {len(test_groups)}\n" + format_metrics_table(table))

    banner("5/5  Ranking the original README's example with ResponseSelector")
    selector = ResponseSelector.from_pretrained(str(fine_dir))
    for turn in README_EXAMPLE["context"]:
        print(f"   context : {turn}")
    ranking = selector.rank(README_EXAMPLE["context"], README_EXAMPLE["candidates"], return_documents=True)
    for place, hit in enumerate(ranking, start=1):
        mark = "*" if hit["corpus_id"] == README_EXAMPLE["answer"] else " "
        print(f"   {place}. {hit['score']:.3f} {mark} {hit['text']}")
    verdict = "first" if ranking[0]["corpus_id"] == README_EXAMPLE["answer"] else "NOT first"
    print(f"   (* = the true next utterance, ranked {verdict}; none of these sentences is in the training data)")

    print(f"\ndone in {time.time() - started:.0f} s.\n{NOTICE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
