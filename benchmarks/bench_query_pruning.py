"""Does dropping frequent query terms speed BM25 retrieval, and what does it change? (issue 11, mining design)

    python benchmarks/bench_query_pruning.py --dialogues 10000 --queries 3000

One bm25s index (numba) over the demo generator's utterances; queries are 3 consecutive utterances, as in mining.
Prints queries per CPU-second exactly, then with terms above a document-frequency share dropped, and how much of
the exact top 10 and top 56 (mining's retrieval depth) each pruned query keeps.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bm25s  # noqa: E402
import numpy as np  # noqa: E402

from ko_mrs.bm25 import default_tokenize  # noqa: E402
from ko_mrs.demo_corpus import generate_dialogues  # noqa: E402

DEPTH = 56  # mining's top_k * _OVERFETCH + 16 at top_k 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialogues", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=3_000)
    args = parser.parse_args()
    texts = [u for r in generate_dialogues(args.dialogues, seed=1) for u in r["utterances"]]
    terms = [default_tokenize(t) for t in texts]
    retriever = bm25s.BM25(backend="numba")
    retriever.index(terms, show_progress=False)
    df = np.diff(retriever.scores["indptr"])
    pick = np.random.default_rng(0).choice(len(texts) - 3, args.queries, replace=False)
    queries = [terms[i] + terms[i + 1] + terms[i + 2] for i in pick]
    retriever.retrieve([queries[0]], k=DEPTH, show_progress=False)  # compile the kernels outside the timing

    def run(batch: list[list[str]]) -> tuple[float, np.ndarray]:
        start = time.process_time()
        docs = retriever.retrieve(batch, k=DEPTH, show_progress=False)[0]
        return len(batch) / (time.process_time() - start), docs

    speed, exact = run(queries)
    print(f"{len(texts)} utterances; exact: {speed:.0f} queries/CPU-s")
    for share in (0.2, 0.05, 0.01):
        limit = share * len(texts)
        rarest = [min(q, key=lambda t: df[retriever.vocab_dict[t]]) for q in queries]  # when every term goes
        keep = [
            [t for t in q if df[retriever.vocab_dict[t]] <= limit] or [r] for q, r in zip(queries, rarest, strict=True)
        ]
        speed, docs = run(keep)
        top10 = np.mean([len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(docs, exact, strict=True)])
        top56 = np.mean([len(set(a) & set(b)) / DEPTH for a, b in zip(docs, exact, strict=True)])
        print(f"drop terms in > {share:.0%} of utterances: {speed:.0f} queries/CPU-s, ", end="")
        print(f"top 10 kept {top10:.3f}, top {DEPTH} kept {top56:.3f}")


if __name__ == "__main__":
    main()
