"""Same-session evaluation (issue 13): a post-trained URC head against TF-IDF and chance on held-out dialogues.

From the held-out dialogues (read in place; split by id into a threshold-tuning half and a test half):
(a) concatenations of 2 to 5 dialogues: boundary precision / recall / F1, P_k and WindowDiff;
(b) two dialogues interleaved turn by turn at random: clustering accuracy (``max_sessions=2``);
and, for the scorers themselves, the same-session AUC with the true sessions as context, and the URC head's
accuracy per class and same-session AUC on held-out windows drawn as post-training evaluates them.
Each method's threshold is the best of a grid on the tuning half (boundary F1 for (a), accuracy for (b)).

    python benchmarks/bench_session.py --model trained=/tmp/pt --model untrained=/tmp/pt-fresh \\
        --data ../shared/data/en/xpersona/test.jsonl --output benchmarks/results/session.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_collators import PostTrainingCollator  # noqa: E402
from ko_mrs.dialogue_data import read_dialogues, split_by_id  # noqa: E402
from ko_mrs.post_training import EVAL_EPOCH  # noqa: E402
from ko_mrs.preprocessing import DialoguePool, build_windows, tokenize_dialogues  # noqa: E402
from ko_mrs.session import DEFAULT_CONTEXT_TURNS, SessionClassifier, assign_sessions, urc_metrics  # noqa: E402
from ko_mrs.session_eval import (  # noqa: E402
    LexicalScorer,
    boundary_metrics,
    chance_segmentation,
    clustering_accuracy,
    concatenated_streams,
    interleaved_streams,
    oracle_context_auc,
)

THRESHOLDS = (*(round(0.05 * k, 2) for k in range(1, 20)), 0.97, 0.99)  # P(another session) at which a new one opens
CHANCE_DRAWS = 20


def cached(scorer):
    """A stream scorer that computes each (context, utterance) once: threshold tuning revisits most of them."""
    memo: dict[tuple[tuple[int, ...], int], float] = {}

    def scores(contexts, i):
        todo = [c for c in dict.fromkeys(tuple(c) for c in contexts) if (c, i) not in memo]
        if todo:
            memo.update({(c, i): s for c, s in zip(todo, scorer(todo, i), strict=True)})
        return [memo[(tuple(c), i)] for c in contexts]

    return scores


def segment_all(streams, scorers, threshold, interleaved, turns):
    return [
        assign_sessions(
            len(s.labels), scorer, threshold=threshold, interleaved=interleaved,
            max_sessions=2 if interleaved else None, context_turns=turns,
        )
        for s, scorer in zip(streams, scorers, strict=True)
    ]  # fmt: skip


def task_score(streams, results, interleaved) -> float:
    if interleaved:
        return float(np.mean([clustering_accuracy(s.labels, r.labels) for s, r in zip(streams, results, strict=True)]))
    return boundary_metrics(streams, [r.boundaries for r in results]).f1


def evaluate_method(name, scorer_for, dev, test, turns) -> dict:
    """Tune the threshold on the dev streams, report on the test streams, for both tasks."""
    row: dict = {"method": name}
    for task, interleaved in (("concatenated", False), ("interleaved", True)):
        dev_scorers = [cached(scorer_for(s)) for s in dev[task]]
        tuned = max(
            THRESHOLDS,
            key=lambda t: task_score(
                dev[task], segment_all(dev[task], dev_scorers, t, interleaved, turns), interleaved
            ),
        )
        test_scorers = [cached(scorer_for(s)) for s in test[task]]
        results = segment_all(test[task], test_scorers, tuned, interleaved, turns)
        row[f"{task}_threshold"] = tuned
        if interleaved:
            row["clustering_accuracy"] = task_score(test[task], results, True)
        else:
            row.update(boundary_metrics(test[task], [r.boundaries for r in results])._asdict())
    row["oracle_context_auc"] = oracle_context_auc(test["concatenated"] + test["interleaved"], scorer_for, turns)
    return row


def chance_row(test) -> dict:
    rng = random.Random(0)
    boundary = [
        boundary_metrics(
            test["concatenated"],
            [chance_segmentation(s, rng, interleaved=False).boundaries for s in test["concatenated"]],
        )
        for _ in range(CHANCE_DRAWS)
    ]
    accuracy = [np.mean([clustering_accuracy(s.labels, chance_segmentation(s, rng, interleaved=True).labels)
                         for s in test["interleaved"]]) for _ in range(CHANCE_DRAWS)]  # fmt: skip
    row = {"method": f"chance (mean of {CHANCE_DRAWS} draws)"}
    row.update({key: float(np.mean([b._asdict()[key] for b in boundary])) for key in boundary[0]._fields})
    row.update(clustering_accuracy=float(np.mean(accuracy)), oracle_context_auc=0.5)
    return row


def window_metrics(classifier: SessionClassifier, dialogues, max_windows: int, lexical: LexicalScorer) -> dict:
    """URC per-class accuracy and same-session AUC on held-out windows with post-training's eval draws."""
    tokenizer = classifier.tokenizer
    tokenized = tokenize_dialogues(dialogues, tokenizer)
    windows = build_windows(tokenized, window=classifier.context_turns)
    windows = windows.shuffle(seed=0).select(range(min(max_windows, len(windows))))
    collator = PostTrainingCollator(
        tokenizer=tokenizer,
        pool=DialoguePool(tokenized),
        max_length=classifier.max_length,
        mlm_probability=0.0,
        num_urc_labels=classifier.model.config.num_urc_labels,
        epoch=EVAL_EPOCH,
    )
    logits, labels, lexical_other = [], [], []
    with torch.inference_mode():
        for start in range(0, len(windows), 64):
            rows = list(windows.select(range(start, min(start + 64, len(windows)))))
            batch = collator(rows)
            urc = batch.pop("urc_labels")
            batch.pop("labels")
            logits.append(classifier.model(**batch).urc_logits.float())
            labels.append(urc)
            # the lexical baseline on the same pairs: decode the context and the candidate back from the draw
            for row, (_, candidate) in zip(rows, map(collator.draw, rows), strict=True):
                context = dialogues[int(row["dialogue"])]["utterances"][int(row["start"]) : int(row["position"])]
                reply = dialogues[candidate.dialogue]["utterances"][candidate.position]
                lexical_other.append(
                    lexical.for_stream([*context, reply])([list(range(len(context)))], len(context))[0]
                )
    logits_array, labels_array = torch.cat(logits).numpy(), torch.cat(labels).numpy()
    metrics = {"windows": len(labels_array), **urc_metrics(logits_array, labels_array)}
    metrics["urc_prior"] = float(np.bincount(labels_array).max() / len(labels_array))
    from sklearn.metrics import roc_auc_score

    metrics["lexical_same_session_auc"] = float(roc_auc_score(labels_array != 0, -np.asarray(lexical_other)))
    return metrics


def table(header: list[str], rows: list[list]) -> str:
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n" + "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH", help="post-trained model(s)")
    parser.add_argument("--data", nargs="+", default=[str(ROOT.parent / "shared/data/en/xpersona/test.jsonl")])
    parser.add_argument("--streams", type=int, default=60, help="test streams per task (the dev half gets half)")
    parser.add_argument("--windows", type=int, default=2000, help="held-out windows for the URC metrics")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    started, load_start = time.time(), os.getloadavg()

    dialogues, _ = read_dialogues(args.data)
    halves = split_by_id(dialogues, args.seed, (0.5, 0.5, 0.0))
    sets = {}
    for name, half, count in (
        ("dev", halves["train"], args.streams // 2),
        ("test", halves["validation"], args.streams),
    ):
        texts, ids = half["utterances"], half["id"]
        sets[name] = {
            "concatenated": concatenated_streams(texts, ids, num_streams=count, seed=args.seed),
            "interleaved": interleaved_streams(texts, ids, num_streams=count, seed=args.seed),
        }
    lexical = LexicalScorer([u for d in dialogues["utterances"] for u in d])
    turns = DEFAULT_CONTEXT_TURNS  # the lexical baseline's too; a model's own replaces it
    rows, windows = [], {}
    for spec in args.model:
        name, _, path = spec.partition("=")
        classifier = SessionClassifier.from_pretrained(path, device="cpu", batch_size=64)
        turns = classifier.context_turns
        scorer_for = classifier.stream_scorer
        rows.append(evaluate_method(f"URC head: {name}", lambda s, f=scorer_for: f(s.utterances), sets["dev"],
                                    sets["test"], turns))  # fmt: skip
        windows[name] = window_metrics(classifier, halves["validation"], args.windows, lexical)
        print(f"{name}: done at {time.time() - started:.0f} s", file=sys.stderr)
    rows.append(evaluate_method("TF-IDF cosine to the running session", lambda s: lexical.for_stream(s.utterances),
                                sets["dev"], sets["test"], turns))  # fmt: skip
    rows.append(chance_row(sets["test"]))

    test = sets["test"]
    info = {
        "data": args.data,
        "test_dialogues": len(halves["validation"]),
        "dev_dialogues": len(halves["train"]),
        "streams": {task: len(test[task]) for task in test},
        "utterances": {task: sum(len(s.labels) for s in test[task]) for task in test},
        "context_turns": turns,
        "seconds": round(time.time() - started),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
    }
    print(json.dumps(info))
    seg_columns = ["precision", "recall", "f1", "pk", "windowdiff", "clustering_accuracy", "oracle_context_auc"]
    print(table(["method", "boundary P", "R", "F1", "P_k (lower is better)", "WindowDiff (lower)",
                 "interleaved clustering acc.", "AUC, true sessions as context"],
                [[r["method"], *(r[c] for c in seg_columns)] for r in rows]))  # fmt: skip
    win_columns = ["urc_accuracy", "urc_accuracy_class_0", "urc_accuracy_class_1", "urc_accuracy_class_2",
                   "urc_prior", "same_session_auc", "lexical_same_session_auc"]  # fmt: skip
    print(table(["model", "windows", "URC acc.", "class 0 (other dialogue)", "class 1 (same dialogue)",
                 "class 2 (next)", "prior", "same-session AUC", "TF-IDF AUC, same pairs"],
                [[name, m["windows"], *(m.get(c, float("nan")) for c in win_columns)]
                 for name, m in windows.items()]))  # fmt: skip
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"info": info, "segmentation": rows, "windows": windows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
