"""Retrieve-then-rerank on held-out dialogues: does the teacher help the bi-encoder, and what does a query cost?

1. Trains three bi-encoder students with run_distillation.py from the same start and data: without a teacher
   (``--teacher_weight 0``), with listwise KL, with Margin-MSE (the teacher's scores are computed once, cached).
2. Pool: every distinct utterance of the held-out test dialogues. Queries: the contexts of the fixed test groups
   (their positive is an utterance of the pool). Recall@1/10/100 of each student and of BM25 over the same pool;
   end-to-end R@1 of retrieving 100 and reranking them with the teacher (``Responder``).
3. The usual 1-in-10 test groups: each student's R10@1 beside the teacher's.
4. Latency per query on this CPU: context encoding, search at 10k / 100k / 1M replies (the pool's embeddings
   repeated with noise, and random 768-d ones for a BERT-base retriever), ``respond()`` at top 100; index size.

Models, data and the output live where the arguments say; the defaults are the demo's (``make demo``), read only.

    python benchmarks/bench_retrieval.py --out /tmp/bench-retrieval [--max_steps 300]
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

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ko_mrs.bm25 import bm25_retrieve  # noqa: E402
from ko_mrs.dialogue_data import read_eval_groups  # noqa: E402
from ko_mrs.metrics import compute_ranking_metrics, format_metrics_table  # noqa: E402
from ko_mrs.ranking import ResponseSelector  # noqa: E402
from ko_mrs.responder import Responder, load_retriever  # noqa: E402
from ko_mrs.retrieval import ReplyIndex, faiss_available, read_reply_pool  # noqa: E402

DEMO = Path(os.environ.get("KO_MRS_DEMO", ROOT))
STUDENTS = {
    "no teacher": ["--teacher_weight", "0"],
    "teacher, KL": ["--teacher_weight", "1", "--distillation_loss", "kl"],
    "teacher, Margin-MSE": ["--teacher_weight", "1", "--distillation_loss", "margin_mse"],
}
KS = (1, 10, 100)


def train(name: str, extra: list[str], args: argparse.Namespace) -> Path:
    out = args.out / name.replace(", ", "-").replace(" ", "-").lower()
    if (out / "test_results.json").is_file():
        return out  # a rerun reuses a finished student
    command = [
        sys.executable, str(ROOT / "run_distillation.py"), str(ROOT / "configs/distillation/tiny.yaml"),
        "--model_name_or_path", str(args.student_init), "--teacher_name_or_path", str(args.teacher),
        "--train_files", str(args.train), "--test_groups", str(args.test_groups),
        "--output_dir", str(out), "--do_eval", "false", "--eval_strategy", "no", "--load_best_model_at_end", "false",
        "--max_steps", str(args.max_steps), "--save_steps", str(args.max_steps), "--disable_tqdm", "true",
        "--seed", str(args.seed), "--logging_steps", "25", *extra,
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=ROOT)
    return out


def recall(found: list[list[int]], targets: list[int]) -> dict[str, float]:
    return {f"R@{k}": float(np.mean([t in row[:k] for row, t in zip(found, targets, strict=True)])) for k in KS}


def per_query_ms(fn, queries: list, repeat: int = 1) -> float:
    times = []
    for q in queries:
        start = time.perf_counter()
        for _ in range(repeat):
            fn(q)
        times.append((time.perf_counter() - start) / repeat)
    return 1000 * statistics.median(times)


def search_latency(base: np.ndarray, sizes: list[int], queries: np.ndarray, rng: np.random.Generator) -> list[dict]:
    rows = []
    for size in sizes:
        vectors = np.resize(base, (size, base.shape[1]))  # the base rows repeated
        for start in range(0, size, 65_536):  # float32 noise a block at a time: no float64 copy of 1M rows
            block = vectors[start : start + 65_536]
            block += 0.01 * rng.standard_normal(block.shape, dtype=np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
        index = ReplyIndex(vectors, [""] * size)
        row = {"replies": size, "dim": base.shape[1]}
        for backend in ("faiss", "numpy") if faiss_available() else ("numpy",):
            index.search(queries[:1], 100, backend)  # builds the FAISS index outside the timing
            row[f"{backend} ms/query"] = per_query_ms(
                lambda q, b=backend, i=index: i.search(q[None], 100, b), list(queries)
            )
        row["vectors MB"] = vectors.nbytes / 2**20
        rows.append(row)
        del vectors, index
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--teacher", type=Path, default=DEMO / "runs/demo/fine-tuned")
    parser.add_argument("--student_init", type=Path, default=DEMO / "runs/demo/post-trained")
    parser.add_argument("--train", type=Path, default=DEMO / "data/demo/train.jsonl")
    parser.add_argument("--test_dialogues", type=Path, default=DEMO / "data/demo/test.jsonl")
    parser.add_argument("--test_groups", type=Path, default=DEMO / "runs/demo/groups/test.jsonl")
    parser.add_argument("--max_steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--e2e_queries", type=int, default=312, help="queries reranked end to end")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--latency_queries", type=int, default=20)
    parser.add_argument("--students", nargs="+", choices=list(STUDENTS), default=list(STUDENTS))
    parser.add_argument("--no_latency", action="store_true", help="quality only (a student added to a run)")
    parser.add_argument("--results", default="results.json", help="file name under --out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    results: dict[str, object] = {"load_before": os.getloadavg()}

    students = {name: train(name, STUDENTS[name], args) for name in args.students}
    results["train_seconds"] = {
        name: json.loads((path / "train_results.json").read_text())["train_runtime"] for name, path in students.items()
    }

    groups = read_eval_groups(args.test_groups)
    contexts = [g["context"] for g in groups]
    positives = [g["candidates"][g["labels"].index(1)] for g in groups]

    # full-pool retrieval: every distinct utterance of the test dialogues
    recalls, indexes, encoders = {}, {}, {}
    for name, path in students.items():
        encoders[name] = load_retriever(str(path), device="cpu")
        start = time.perf_counter()
        indexes[name] = ReplyIndex.build(
            encoders[name], read_reply_pool(args.test_dialogues), args.out / "indexes" / path.name, show_progress=False
        )
        results.setdefault("index_build_replies_per_s", {})[name] = len(indexes[name]) / (time.perf_counter() - start)
        pool = indexes[name].texts
        _, ids = indexes[name].search(encoders[name].embed_contexts(contexts), max(KS))
        recalls[name] = recall(ids.tolist(), [pool.index(p) for p in positives])
    pool = list(next(iter(indexes.values())).texts)
    targets = [pool.index(p) for p in positives]
    bm25_ids = bm25_retrieve(pool, contexts, max(KS))
    recalls["BM25"] = recall(bm25_ids, targets)
    results["pool_replies"] = len(pool)
    results["queries"] = len(contexts)
    results["recall"] = recalls

    # end to end: retrieve 100, rerank with the teacher
    teacher = ResponseSelector.from_pretrained(str(args.teacher), device="cpu", batch_size=100)
    n = min(args.e2e_queries, len(contexts))
    end_to_end = {}
    first_stage = {name: indexes[name].search(encoders[name].embed_contexts(contexts[:n]), 100)[1] for name in students}
    first_stage["BM25"] = np.asarray([row[:100] for row in bm25_ids[:n]])
    for name, ids in first_stage.items():
        # every student's index holds the same pool in the same order (the file's distinct utterances)
        items = [{"context": c, "candidates": [pool[i] for i in row]} for c, row in zip(contexts[:n], ids, strict=True)]
        start = time.perf_counter()
        top = [r["ranking"][0]["corpus_id"] for r in teacher.rank_batch(items, top_k=1)]
        hits = [item["candidates"][t] == p for item, t, p in zip(items, top, positives[:n], strict=True)]
        end_to_end[name] = {"R@1 after rerank": float(np.mean(hits)), "rerank s": time.perf_counter() - start}
    results["end_to_end"] = end_to_end
    results["end_to_end_queries"] = n

    # the 1-in-10 groups
    tens = {}
    for name, path in students.items():
        tens[f"student: {name}"] = json.loads((path / "test_results.json").read_text())["test_r10@1"]
    ids, scores, labels = [], [], []
    for g, ranked in enumerate(teacher.rank_batch(groups)):
        for entry in ranked["ranking"]:
            ids.append(g)
            scores.append(entry["score"])
            labels.append(groups[g]["labels"][entry["corpus_id"]])
    tens["teacher (cross-encoder)"] = compute_ranking_metrics(ids, scores, labels)["r10@1"]
    tens["BM25"] = json.loads((next(iter(students.values())) / "test_results.json").read_text())["test_bm25_r10@1"]
    results["r10@1"] = tens

    # latency
    if not args.no_latency:
        best = max(students, key=lambda name: recalls[name]["R@100"])
        encoder, index = encoders[best], indexes[best]
        queries = contexts[: args.latency_queries]
        results["encode_context_ms"] = per_query_ms(lambda c: encoder.embed_contexts([c]), queries)
        rng = np.random.default_rng(0)
        query_vectors = encoder.embed_contexts(queries)
        results["search"] = search_latency(np.asarray(index.embeddings), args.sizes, query_vectors, rng)
        random_768 = rng.standard_normal((10_000, 768), dtype=np.float32)
        random_queries = rng.standard_normal((len(queries), 768), dtype=np.float32)
        results["search"] += search_latency(random_768, args.sizes, random_queries, rng)
        responder = Responder(encoder, index, teacher, retrieve_k=100)
        results["respond_ms_top100"] = per_query_ms(lambda c: responder.respond(c, top_k=5), queries)
        index_dir = args.out / "indexes" / students[best].name
        on_disk = sum(f.stat().st_size for f in index_dir.iterdir())
        text_bytes = (index_dir / "replies.jsonl").stat().st_size
        results["index_on_disk"] = {
            "replies": len(index),
            "bytes": on_disk,
            "bytes per reply (vectors)": 4 * index.dim,
            "bytes per reply (text)": text_bytes / len(index),
            "1M replies, computed MB": (1_000_000 * (4 * index.dim + text_bytes / len(index))) / 2**20,
            "1M replies at 768-d, computed MB": (1_000_000 * (4 * 768 + text_bytes / len(index))) / 2**20,
        }
        results["latency_student"] = best
    results["faiss"] = faiss_available()
    results["load_after"] = os.getloadavg()
    (args.out / args.results).write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(format_metrics_table(recalls))
    print(format_metrics_table(end_to_end))
    print(json.dumps({k: v for k, v in results.items() if k not in ("recall", "end_to_end")}, indent=2))


if __name__ == "__main__":
    main()
