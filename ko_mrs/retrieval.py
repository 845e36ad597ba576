"""A reply pool embedded once by the bi-encoder's reply tower, searched by inner product for a context's top k.

A pool is every utterance of a dialogue corpus (JSONL with ``utterances``), a JSONL of ``{"text": ...}`` replies,
or a text file with one reply per line; exact repeats are kept once (the count is logged), blank lines hold no
reply. :meth:`ReplyIndex.build` streams: replies are read, embedded and written ``chunk_size`` at a time into a
temporary folder that is renamed into place at the end, so a crash leaves no half-written index and memory holds one
chunk, not the pool. On disk an index is ``embeddings.f32`` (``count x dim`` float32, memory-mapped when loaded),
``replies.jsonl`` (one JSON string per line) and ``index.json``.

Search is exact either way: FAISS's ``IndexFlatIP`` when ``faiss-cpu`` is installed (``pip install ko-mrs[retrieval]``;
it holds the vectors in RAM: ``count x dim x 4`` bytes), numpy otherwise (a matrix product over the memory-mapped
vectors, ``NUMPY_BLOCK`` rows at a time, so RAM stays flat however large the pool).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from ko_mrs.cli_errors import UsageError
from ko_mrs.dialogue_data import DialogueFormatError, iter_json_objects

logger = logging.getLogger(__name__)

__all__ = ["BACKENDS", "Hit", "ReplyIndex", "faiss_available", "read_reply_pool"]

BACKENDS = ("auto", "faiss", "numpy")
EMBEDDINGS, REPLIES, META = "embeddings.f32", "replies.jsonl", "index.json"
NUMPY_BLOCK = 65_536  # pool rows per matrix product in the numpy search: 65k x 768 floats = 200 MB at most


class Hit(NamedTuple):
    """One retrieved reply: its row in the pool, its text and its inner product with the context."""

    reply_id: int
    text: str
    score: float


def faiss_available() -> bool:
    return find_spec("faiss") is not None


def read_reply_pool(path: str | Path) -> Iterator[str]:
    """The replies of a pool file, in file order, repeats included (:meth:`ReplyIndex.build` drops them).

    A missing file raises here, a bad line when it is read.

    ``.jsonl``/``.json``: a line with ``utterances`` (a dialogue) gives each of them, a line with ``text`` gives it.
    Anything else is a text file, one reply per line. Bad lines raise naming the file, line and field.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give a reply file or a saved index's folder")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return _pool_lines(path)


def _pool_lines(path: Path) -> Iterator[str]:
    if path.suffix in (".jsonl", ".json"):
        for line, record in iter_json_objects(path, "a reply pool line"):
            if "utterances" in record:
                texts, name = record["utterances"], "utterances"
                if not isinstance(texts, list):
                    raise DialogueFormatError(path, line, name, "must be a list of strings")
            elif "text" in record:
                texts, name = [record["text"]], "text"
            else:
                raise DialogueFormatError(path, line, "<json>", "needs 'text' (a reply) or 'utterances' (a dialogue)")
            for i, text in enumerate(texts):
                if not isinstance(text, str):
                    raise DialogueFormatError(path, line, name, f"item {i} must be a string, got {type(text).__name__}")
                if text.strip():
                    yield text
        return
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, 1):
            try:
                text = raw.decode("utf-8-sig" if line == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DialogueFormatError(path, line, "<text>", f"not valid UTF-8 ({err.reason})") from None
            if text.strip():
                yield text


def _unique(replies: Iterable[str], counts: dict[str, int]) -> Iterator[str]:
    seen: set[str] = set()
    for reply in replies:
        counts["read"] += 1
        if reply not in seen:
            seen.add(reply)
            yield reply


class ReplyIndex:
    """Embedded replies and exact top-k search by inner product (see the module docstring)."""

    def __init__(self, embeddings: np.ndarray, texts: Sequence[str], meta: dict | None = None) -> None:
        if embeddings.ndim != 2 or len(embeddings) != len(texts):
            raise ValueError(f"{len(texts)} replies but embeddings of shape {embeddings.shape}")
        self.embeddings = embeddings
        self.texts = texts
        self.meta = dict(meta or {})
        self._faiss = None

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @classmethod
    def build(
        cls,
        encoder,
        replies: Iterable[str],
        out_dir: str | Path,
        *,
        chunk_size: int = 4096,
        show_progress: bool = True,
        meta: dict | None = None,
    ) -> ReplyIndex:
        """Embed ``replies`` with ``encoder`` (a :class:`~ko_mrs.bi_encoder.TextEncoder`) into ``out_dir``."""
        out_dir = Path(out_dir)
        tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        counts = {"read": 0, "kept": 0}
        try:
            unique = _unique(replies, counts)
            with (tmp / EMBEDDINGS).open("wb") as vectors, (tmp / REPLIES).open("w", encoding="utf-8") as texts:
                progress = tqdm(desc="Embedding replies", unit="reply", disable=not show_progress)
                while chunk := [reply for _, reply in zip(range(chunk_size), unique, strict=False)]:
                    vectors.write(np.ascontiguousarray(encoder.embed_replies(chunk), dtype=np.float32).tobytes())
                    texts.writelines(json.dumps(reply, ensure_ascii=False) + "\n" for reply in chunk)
                    counts["kept"] += len(chunk)
                    progress.update(len(chunk))
                progress.close()
                for handle in (vectors, texts):
                    handle.flush()
                    os.fsync(handle.fileno())
            if not counts["kept"]:
                raise UsageError("the reply pool holds no replies")
            meta = {
                **(meta or {}),
                "count": counts["kept"],
                "dim": encoder.dim,
                "repeats_dropped": counts["read"] - counts["kept"],
            }
            (tmp / META).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
            _replace_dir(tmp, out_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("indexed %d replies (%d repeats dropped) into %s", meta["count"], meta["repeats_dropped"], out_dir)
        return cls.load(out_dir)

    @classmethod
    def load(cls, index_dir: str | Path) -> ReplyIndex:
        index_dir = Path(index_dir)
        meta_path = index_dir / META
        if not meta_path.is_file():
            raise FileNotFoundError(f"{index_dir}: not a reply index (no {META})")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        embeddings = np.memmap(index_dir / EMBEDDINGS, dtype=np.float32, mode="r", shape=(meta["count"], meta["dim"]))
        with (index_dir / REPLIES).open(encoding="utf-8") as handle:
            texts = [json.loads(line) for line in handle]
        return cls(embeddings, texts, meta)

    @staticmethod
    def is_index(path: str | Path) -> bool:
        return (Path(path) / META).is_file()

    def nbytes_on_disk(self, index_dir: str | Path) -> int:
        return sum(f.stat().st_size for f in Path(index_dir).iterdir() if f.is_file())

    def search(self, queries: np.ndarray, k: int, backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``[queries, min(k, len(self))]``, best first: the exact top k by inner product."""
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, len(self))
        if backend == "faiss" or (backend == "auto" and faiss_available()):
            return self._faiss_index().search(queries, k)
        return self._numpy_search(queries, k)

    def hits(self, query: np.ndarray, k: int, backend: str = "auto") -> list[Hit]:
        scores, ids = self.search(query, k, backend)
        return [Hit(int(i), self.texts[int(i)], float(s)) for s, i in zip(scores[0], ids[0], strict=True)]

    def _faiss_index(self):
        if self._faiss is None:
            import faiss

            index = faiss.IndexFlatIP(self.dim)
            for start in range(0, len(self), NUMPY_BLOCK):  # from the memory map a block at a time
                index.add(np.ascontiguousarray(self.embeddings[start : start + NUMPY_BLOCK]))
            self._faiss = index
        return self._faiss

    def _numpy_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        best_ids = np.zeros((len(queries), 0), dtype=np.int64)
        for start in range(0, len(self), NUMPY_BLOCK):
            scores = queries @ np.asarray(self.embeddings[start : start + NUMPY_BLOCK]).T
            ids = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
            scores = np.concatenate([best_scores, scores], axis=1)
            ids = np.concatenate([best_ids, ids], axis=1)
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if scores.shape[1] > k else np.indices(scores.shape)[1]
            best_scores = np.take_along_axis(scores, top, axis=1)
            best_ids = np.take_along_axis(ids, top, axis=1)
        # best first; ties by the lower id, as a stable brute-force sort would give them
        order = np.lexsort((best_ids, -best_scores), axis=1)
        return np.take_along_axis(best_scores, order, axis=1), np.take_along_axis(best_ids, order, axis=1)


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``, replacing a previous index there only once the new one is complete."""
    old = target.with_name(f".{target.name}.{os.getpid()}.old")
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)
