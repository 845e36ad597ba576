"""BM25 baseline for response selection: score each candidate by lexical overlap with the context.

A learned ranker should beat this comfortably; if it does not, the training data or the evaluation
(group ids, labels) is more likely broken than the model is good. Uses `rank_bm25.BM25Okapi` with
the group's candidates as the document collection and the whole dialogue context as the query.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Sequence

from rank_bm25 import BM25Okapi

__all__ = ["bm25_scores", "default_tokenize"]


def default_tokenize(text: str) -> list[str]:
    """Tokenize Korean (or mixed) text into eojeols plus the character bigrams of longer eojeols.

    Korean is agglutinative: an eojeol (space-delimited word) glues particles and endings onto a
    stem, so "학교에서" and "학교는" share no whole-word token even though both mention "학교".
    A morphological analyser (Mecab, Okt) would fix that but adds native dependencies; character
    bigrams inside each eojeol recover most stem overlap ("학교" is a bigram of both) without any.
    The eojeol itself is kept so exact word matches weigh more than partial ones, and bigrams are
    only added for eojeols longer than two characters, where they differ from the eojeol.

    Text is NFKC-normalised (composes jamo-decomposed Hangul, e.g. from macOS file names, and folds
    full-width forms) and lowercased; punctuation, symbols and control characters become spaces so
    "뭐해?밥먹자" still splits and "ㅋㅋ!!" does not turn into a distinct token from "ㅋㅋ".
    """
    normalised = unicodedata.normalize("NFKC", text).lower()
    cleaned = "".join(" " if unicodedata.category(ch)[0] in "PSCZ" else ch for ch in normalised)
    tokens: list[str] = []
    for eojeol in cleaned.split():
        tokens.append(eojeol)
        if len(eojeol) > 2:
            tokens.extend(eojeol[i : i + 2] for i in range(len(eojeol) - 1))
    return tokens


class _PositiveIdfBM25(BM25Okapi):
    """BM25Okapi with Lucene's always-positive idf, log(1 + (N - n + 0.5) / (n + 0.5)).

    The collection here is one group's candidates (often 10, sometimes 2 or 1). BM25Okapi's
    log((N - n + 0.5) / (n + 0.5)) is zero for a term in half of the documents and negative for
    every term when N = 1, which would rank a candidate sharing words with the context at or below
    an unrelated one. A positive idf keeps the score monotone in overlap for any group size.
    """

    def _calc_idf(self, nd: dict[str, int]) -> None:
        for word, doc_freq in nd.items():
            self.idf[word] = math.log(1.0 + (self.corpus_size - doc_freq + 0.5) / (doc_freq + 0.5))


def bm25_scores(
    context: Sequence[str],
    candidates: Sequence[str],
    tokenize: Callable[[str], list[str]] = default_tokenize,
) -> list[float]:
    """Score each candidate response against the dialogue context with BM25 (higher = better).

    The query is all context turns together (lexical cues from earlier turns matter too); the
    documents are the candidates, so idf reflects which words distinguish candidates of this context.
    Returns one float per candidate, in candidate order. Degenerate inputs (no candidates, a context
    or all candidates without any token) give all-zero scores instead of a division by zero.
    """
    documents = [tokenize(candidate) for candidate in candidates]
    query = [token for turn in context for token in tokenize(turn)]
    if not query or not any(documents):
        return [0.0] * len(documents)
    return [float(score) for score in _PositiveIdfBM25(documents).get_scores(query)]


def bm25_retrieve(
    pool: Sequence[str],
    contexts: Sequence[Sequence[str]],
    k: int,
    tokenize: Callable[[str], list[str]] = default_tokenize,
) -> list[list[int]]:
    """For each context, the ids of the ``k`` replies of ``pool`` BM25 ranks highest (the first-stage baseline).

    Unlike :func:`bm25_scores`, the collection is the whole pool (``bm25s``, the index negatives.py mines with), so
    idf reflects the pool; the query is all context turns together, as there.
    """
    import bm25s

    retriever = bm25s.BM25()
    retriever.index([tokenize(text) or [""] for text in pool], show_progress=False)
    queries = [[token for turn in context for token in tokenize(turn)] or [""] for context in contexts]
    ids = retriever.retrieve(queries, k=min(k, len(pool)), show_progress=False)[0]
    return [row.tolist() for row in ids]
