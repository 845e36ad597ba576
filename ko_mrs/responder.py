"""A complete retrieval-based responder: the bi-encoder retrieves from a reply pool, the cross-encoder reranks.

A cross-encoder reads every (context, reply) pair, so it can rank tens of candidates per second on a CPU, not a
chatbot's pool of 100,000 replies. The retriever (:class:`~ko_mrs.bi_encoder.BertBiEncoder`, trained by
``run_distillation.py``) embeds the pool once; a context costs one forward pass and an inner-product search
(:mod:`ko_mrs.retrieval`), and only its ``retrieve_k`` best replies reach the reranker
(:class:`~ko_mrs.ranking.ResponseSelector`).

    responder = Responder.from_pretrained("runs/demo/retriever", "runs/demo/fine-tuned", "data/demo/test.jsonl")
    for row in responder.respond(["주말에 뭐 해?", "등산 가려고"], top_k=5):
        print(row.rerank_score, row.retrieval_score, row.text)

    mrs-respond --retriever runs/demo/retriever --reranker runs/demo/fine-tuned --pool data/demo/test.jsonl \
        --context "주말에 뭐 해?" "등산 가려고"
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from safetensors import SafetensorError
from tqdm import tqdm
from transformers import AutoTokenizer, BertConfig

from ko_mrs.bi_encoder import BertBiEncoder, TextEncoder
from ko_mrs.cli_errors import UsageError, check_output_file, load_for_cli, report
from ko_mrs.dialogue_data import DialogueFormatError, iter_json_objects, write_jsonl
from ko_mrs.distillation import model_fingerprint
from ko_mrs.ranking import ResponseSelector
from ko_mrs.ranking import _positive_int as positive_int
from ko_mrs.retrieval import BACKENDS, Hit, ReplyIndex, read_reply_pool

__all__ = ["Response", "Responder", "main"]

DEFAULT_RETRIEVE_K = 100
INDEX_FOLDER = "reply_index"


class Response(NamedTuple):
    """A reply for a context: the reranker's P(next) and the retriever's inner product (its first-stage rank)."""

    text: str
    rerank_score: float
    retrieval_score: float
    retrieval_rank: int
    reply_id: int


class Responder:
    """Retrieve ``retrieve_k`` replies from ``index`` with ``encoder``, rerank them with ``reranker``."""

    def __init__(
        self,
        encoder: TextEncoder,
        index: ReplyIndex,
        reranker: ResponseSelector,
        *,
        retrieve_k: int = DEFAULT_RETRIEVE_K,
        backend: str = "auto",
    ) -> None:
        if retrieve_k < 1:
            raise ValueError(f"retrieve_k must be at least 1, got {retrieve_k}")
        if index.dim != encoder.dim:
            raise ValueError(f"the index holds {index.dim}-dimensional replies, the retriever makes {encoder.dim}")
        self.encoder = encoder
        self.index = index
        self.reranker = reranker
        self.retrieve_k = retrieve_k
        self.backend = backend

    @classmethod
    def from_pretrained(
        cls,
        retriever: str,
        reranker: str,
        pool: str | Path | Sequence[str],
        *,
        retrieve_k: int = DEFAULT_RETRIEVE_K,
        index_dir: str | Path | None = None,
        device: str | None = None,
        batch_size: int = 64,
        backend: str = "auto",
        show_progress: bool = False,
    ) -> Responder:
        """Load both models and the pool's index, building it on first use.

        ``pool``: a saved index's folder, a reply file (see :func:`ko_mrs.retrieval.read_reply_pool`) or a list of
        replies. A file's index is saved beside the retriever (``<retriever>/reply_index/<file>-<key>``, the key
        naming the file's contents and the retriever's weights) unless ``index_dir`` says where; the next call
        loads it instead of embedding the pool again.
        """
        encoder = load_retriever(retriever, device=device, batch_size=batch_size)
        index = _pool_index(encoder, retriever, pool, index_dir, show_progress)
        selector = ResponseSelector.from_pretrained(reranker, device=device, batch_size=batch_size)
        return cls(encoder, index, selector, retrieve_k=retrieve_k, backend=backend)

    def retrieve(self, context: Sequence[str], k: int | None = None) -> list[Hit]:
        """The ``k`` (default ``retrieve_k``) replies of the pool nearest to ``context``, best first."""
        turns = _check_context(context)
        return self.index.hits(self.encoder.embed_contexts([turns]), k or self.retrieve_k, self.backend)

    def respond(self, context: Sequence[str], top_k: int = 5) -> list[Response]:
        """The ``top_k`` best replies to ``context``: ``retrieve_k`` retrieved, reranked, best first."""
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        hits = self.retrieve(context)
        ranking = self.reranker.rank(_check_context(context), [hit.text for hit in hits], top_k=top_k)
        return [
            Response(
                text=hits[entry["corpus_id"]].text,
                rerank_score=float(entry["score"]),
                retrieval_score=hits[entry["corpus_id"]].score,
                retrieval_rank=int(entry["corpus_id"]) + 1,
                reply_id=hits[entry["corpus_id"]].reply_id,
            )
            for entry in ranking
        ]


def load_retriever(retriever: str, *, device: str | None = None, batch_size: int = 64) -> TextEncoder:
    """A trained bi-encoder and its tokenizer as a :class:`TextEncoder`; anything else is an OSError/ValueError.

    A cross-encoder or a plain BERT would load into the towers too, with nothing to say its embeddings were never
    trained for retrieval: the config must name :class:`BertBiEncoder` (run_distillation.py writes it).
    """
    path = Path(retriever).expanduser()
    if not (path / "config.json").is_file() and Path(retriever).parts and Path(Path(retriever).parts[0]).is_dir():
        raise FileNotFoundError(f"retriever not found: {retriever} holds no model (no config.json)")
    try:
        config = BertConfig.from_pretrained(retriever)
        if BertBiEncoder.__name__ not in (config.architectures or []):
            raise ValueError(f"{retriever} is not a trained retriever (train one with run_distillation.py)")
        tokenizer = AutoTokenizer.from_pretrained(retriever)
        model = BertBiEncoder.from_pretrained(retriever, config=config)
    except (OSError, SafetensorError) as err:
        raise OSError(f"could not load a retriever from {retriever}: {str(err).splitlines()[0]}") from err
    if device is not None:
        model = model.to(device)
    return TextEncoder(model, tokenizer, batch_size=batch_size)


def _pool_index(
    encoder: TextEncoder, retriever: str, pool: str | Path | Sequence[str], index_dir: str | Path | None, progress: bool
) -> ReplyIndex:
    if isinstance(pool, (str, Path)) and ReplyIndex.is_index(pool):
        return ReplyIndex.load(pool)
    if isinstance(pool, (str, Path)):
        path = Path(pool)
        replies = read_reply_pool(path)
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
        digest.update(model_fingerprint(retriever).encode())
        key = digest.hexdigest()[:16]
        target = Path(index_dir) if index_dir else Path(retriever) / INDEX_FOLDER / f"{path.stem}-{key}"
        if ReplyIndex.is_index(target) and (saved := ReplyIndex.load(target)).meta.get("key") == key:
            return saved
        meta = {"pool": str(path), "key": key}
        return ReplyIndex.build(encoder, replies, target, show_progress=progress, meta=meta)
    if index_dir is None:
        raise ValueError("a list of replies needs an index_dir to save its index in")
    return ReplyIndex.build(encoder, list(pool), index_dir, show_progress=progress)


def _check_context(context: Any) -> list[str]:
    if isinstance(context, str) or not isinstance(context, Sequence):
        raise TypeError(f"context must be a list of strings, got {type(context).__name__}")
    for i, turn in enumerate(context):
        if not isinstance(turn, str):
            raise TypeError(f"context[{i}] must be a string, got {type(turn).__name__}")
    turns = [turn for turn in context if turn.strip()]
    if not turns:
        raise ValueError("context must contain at least one non-empty utterance")
    return turns


# ----------------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrs-respond",
        description="Answer a dialogue context from a reply pool: a bi-encoder retrieves, a cross-encoder reranks.",
        epilog=(
            "examples:\n"
            "  mrs-respond --retriever runs/demo/retriever --reranker runs/demo/fine-tuned \\\n"
            '              --pool data/demo/test.jsonl --context "주말에 뭐 해?" "등산 가려고"\n'
            "  mrs-respond ... --pool replies.txt --input contexts.jsonl --output responses.jsonl"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--retriever", required=True, help="a bi-encoder trained by run_distillation.py")
    parser.add_argument("--reranker", required=True, help="a cross-encoder trained by run_fine_tuning.py")
    parser.add_argument(
        "--pool",
        required=True,
        help="replies: dialogues JSONL (every utterance), {'text': ...} JSONL, .txt, or an index",
    )
    parser.add_argument(
        "--index_dir", type=Path, help="where the pool's index is saved (default: beside the retriever)"
    )
    parser.add_argument("--context", nargs="*", metavar="UTTERANCE", help="context turns, oldest first")
    parser.add_argument("--input", type=Path, help='JSONL file, one {"context": [...], ...} per line')
    parser.add_argument("--output", type=Path, help='JSONL file: each input line plus "responses" (written atomically)')
    parser.add_argument("--top_k", type=positive_int, default=5, help="replies to return (default: 5)")
    parser.add_argument("--retrieve_k", type=positive_int, default=DEFAULT_RETRIEVE_K, help="replies to rerank")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="search: faiss when installed, else numpy")
    parser.add_argument("--device", help="torch device (default: cuda, else mps, else cpu)")
    parser.add_argument("--batch_size", type=positive_int, default=64, help="texts per forward pass (default: 64)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``mrs-respond``: 0 on success, 2 (with a one-line message on stderr) on a usage or input error."""
    args = build_parser().parse_args(argv)
    try:
        _respond(args)
    except (UsageError, OSError, ValueError, TypeError) as err:
        return report("mrs-respond", err)
    return 0


def _respond(args: argparse.Namespace) -> None:
    if (args.input is None) != (args.output is None):
        raise UsageError("--input and --output go together")
    if args.input is not None and args.context is not None:
        raise UsageError("give either --context or --input/--output, not both")
    if args.input is None and args.context is None:
        raise UsageError("nothing to answer: give --context, or --input and --output")
    if not ReplyIndex.is_index(args.pool):
        # every line checked before a model is loaded; the count sizes the progress bar
        if not sum(1 for _ in read_reply_pool(args.pool)):
            raise UsageError(f"{args.pool}: holds no replies")
    if args.context is not None:
        contexts = None
        _check_context(args.context)
    else:
        check_output_file(args.output, "--output")
        contexts = list(_read_contexts(args.input))  # every line checked before a model is loaded
        if not contexts:
            raise UsageError(f"{args.input}: holds no items (one JSON object per line is expected)")
    responder = load_for_cli(
        Responder.from_pretrained,
        args.retriever,
        args.reranker,
        args.pool,
        retrieve_k=args.retrieve_k,
        index_dir=args.index_dir,
        device=args.device,
        batch_size=args.batch_size,
        backend=args.backend,
        show_progress=True,
    )
    if contexts is None:
        print(_format_table(responder.respond(args.context, top_k=args.top_k)))
        return
    rows = (
        {**item, "responses": [row._asdict() for row in responder.respond(item["context"], top_k=args.top_k)]}
        for item in tqdm(contexts, desc="Responding", unit="context")
    )
    write_jsonl(rows, args.output)
    print(f"answered {len(contexts)} contexts into {args.output}", file=sys.stderr)


def _format_table(rows: Sequence[Response]) -> str:
    lines = [f"{'rank':>4}  {'rerank':<6}  {'retrieval':<9}  text"]
    lines += [f"{i:>4}  {r.rerank_score:.4f}  {r.retrieval_score:9.4f}  {r.text}" for i, r in enumerate(rows, 1)]
    return "\n".join(lines)


def _read_contexts(path: Path) -> Iterator[dict]:
    try:
        for line, item in iter_json_objects(path, "an item"):
            if "context" not in item:
                raise UsageError(f"{path}:{line}: context: missing field")
            try:
                _check_context(item["context"])
            except (TypeError, ValueError) as err:
                raise UsageError(f"{path}:{line}: context: {err}") from err
            yield item
    except DialogueFormatError as err:
        raise UsageError(str(err)) from err
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err}") from err


if __name__ == "__main__":
    sys.exit(main())
