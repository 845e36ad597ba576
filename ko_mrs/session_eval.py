"""Evaluating session segmentation: streams built from held-out dialogues, their metrics, and two baselines.

Two tasks (issue 13): (a) *concatenated* streams, 2 to 5 dialogues one after another, where the boundaries are
to be found (boundary F1, P_k and WindowDiff from ``nltk.metrics.segmentation``); (b) *interleaved* streams, two
dialogues merged turn by turn in a random order that keeps each dialogue's own order, where each utterance's
dialogue is to be recovered (clustering accuracy: the share of utterances in their cluster's best-matched
dialogue, one cluster to one dialogue).

Baselines: :class:`LexicalScorer`, the TF-IDF cosine of an utterance with the session's latest turns (the terms of
``ko_mrs.bm25.default_tokenize``: eojeols and their character bigrams), segmented by the same greedy
:func:`ko_mrs.session.assign_sessions`; and :func:`chance_segmentation`, random boundaries at the stream's true
boundary rate or random session labels.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from nltk.metrics.segmentation import pk, windowdiff
from scipy.optimize import linear_sum_assignment
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import roc_auc_score
from sklearn.metrics.cluster import contingency_matrix

from ko_mrs.bm25 import default_tokenize
from ko_mrs.session import Segmentation, SessionScorer

__all__ = [
    "LexicalScorer",
    "Stream",
    "boundary_metrics",
    "chance_segmentation",
    "clustering_accuracy",
    "concatenated_streams",
    "interleaved_streams",
    "oracle_context_auc",
]


class Stream(NamedTuple):
    """Utterances of several dialogues in one sequence; ``labels[i]`` is the dialogue (0, 1, ...) of utterance i."""

    utterances: list[str]
    labels: list[int]
    dialogue_ids: list[str]

    @property
    def boundaries(self) -> list[int]:
        return [i for i in range(1, len(self.labels)) if self.labels[i] != self.labels[i - 1]]


def concatenated_streams(
    dialogues: Sequence[Sequence[str]],
    ids: Sequence[str],
    *,
    num_streams: int,
    min_dialogues: int = 2,
    max_dialogues: int = 5,
    seed: int = 0,
) -> list[Stream]:
    """``num_streams`` streams of ``min_dialogues`` to ``max_dialogues`` distinct dialogues, drawn uniformly."""
    if not 2 <= min_dialogues <= max_dialogues <= len(dialogues):
        raise ValueError(
            f"need 2 <= min_dialogues <= max_dialogues <= {len(dialogues)} dialogues, got {min_dialogues}, "
            f"{max_dialogues}"
        )
    rng = random.Random(seed)
    streams = []
    for _ in range(num_streams):
        chosen = rng.sample(range(len(dialogues)), rng.randint(min_dialogues, max_dialogues))
        utterances = [text for d in chosen for text in dialogues[d]]
        labels = [k for k, d in enumerate(chosen) for _ in dialogues[d]]
        streams.append(Stream(utterances, labels, [ids[d] for d in chosen]))
    return streams


def interleaved_streams(
    dialogues: Sequence[Sequence[str]], ids: Sequence[str], *, num_streams: int, seed: int = 0
) -> list[Stream]:
    """``num_streams`` pairs of dialogues merged turn by turn: each next turn is from either, with equal chance,
    until one runs out (each dialogue keeps its order). The first utterance is labelled 0."""
    if len(dialogues) < 2:
        raise ValueError(f"need at least 2 dialogues, got {len(dialogues)}")
    rng = random.Random(seed)
    streams = []
    for _ in range(num_streams):
        pair = rng.sample(range(len(dialogues)), 2)
        turns = [list(dialogues[d]) for d in pair]
        order = [0] * len(turns[0]) + [1] * len(turns[1])
        rng.shuffle(order)  # a uniformly random merge of the two sequences
        if order[0] == 1:  # label the dialogue that speaks first 0, as segmenters number sessions
            order, pair, turns = [1 - k for k in order], pair[::-1], turns[::-1]
        position = [0, 0]
        utterances = []
        for k in order:
            utterances.append(turns[k][position[k]])
            position[k] += 1
        streams.append(Stream(utterances, order, [ids[d] for d in pair]))
    return streams


class BoundaryScores(NamedTuple):
    """Boundary detection over many streams: F1 from summed counts; P_k and WindowDiff averaged per stream."""

    precision: float
    recall: float
    f1: float
    pk: float
    windowdiff: float


def _boundary_string(boundaries: Sequence[int], length: int) -> str:
    """Character j is 1 when utterance j + 1 starts a new session (nltk's segmentation strings)."""
    marks = ["0"] * (length - 1)
    for i in boundaries:
        marks[i - 1] = "1"
    return "".join(marks)


def boundary_metrics(streams: Sequence[Stream], predicted: Sequence[Sequence[int]]) -> BoundaryScores:
    """Exact-position boundary precision / recall / F1, and P_k and WindowDiff with k = half the stream's mean
    true segment length (Pevzner and Hearst's convention; lower is better, 0 is perfect)."""
    hits = n_predicted = n_true = 0
    pks, wds = [], []
    for stream, boundaries in zip(streams, predicted, strict=True):
        true = set(stream.boundaries)
        hits += len(true & set(boundaries))
        n_predicted += len(boundaries)
        n_true += len(true)
        reference = _boundary_string(stream.boundaries, len(stream.labels))
        hypothesis = _boundary_string(boundaries, len(stream.labels))
        k = max(2, round(len(stream.labels) / (2 * (len(true) + 1))))
        pks.append(pk(reference, hypothesis, k=k))
        wds.append(windowdiff(reference, hypothesis, k))
    precision = hits / n_predicted if n_predicted else 0.0
    recall = hits / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return BoundaryScores(precision, recall, f1, float(np.mean(pks)), float(np.mean(wds)))


def clustering_accuracy(true_labels: Sequence[int], predicted_labels: Sequence[int]) -> float:
    """Share of utterances whose cluster is matched to their dialogue, under the best one-to-one matching
    (Hungarian); utterances of clusters left unmatched count as wrong."""
    table = contingency_matrix(true_labels, predicted_labels)
    rows, columns = linear_sum_assignment(table, maximize=True)
    return float(table[rows, columns].sum() / len(true_labels))


def chance_segmentation(stream: Stream, rng: random.Random, *, interleaved: bool) -> Segmentation:
    """Chance: concatenated, each gap a boundary with the stream's true boundary rate; interleaved, each utterance
    after the first in either of two sessions with equal chance."""
    n = len(stream.labels)
    if interleaved:
        labels = [0] + [rng.randrange(2) for _ in range(n - 1)]
    else:
        rate = len(stream.boundaries) / max(n - 1, 1)
        labels = [0]
        for _ in range(n - 1):
            labels.append(labels[-1] + (rng.random() < rate))
    boundaries = [i for i in range(1, n) if labels[i] != labels[i - 1]]
    return Segmentation(labels, boundaries, [None] * n)


class LexicalScorer:
    """1 - the TF-IDF cosine of an utterance with a session's latest turns (their summed term vectors), in [0, 1]:
    a stand-in for P(another session).

    The idf is fitted on ``corpus`` (held-out utterances), so a stream's scores do not depend on the others'.
    """

    def __init__(self, corpus: Sequence[str]) -> None:
        self.vectorizer = TfidfVectorizer(analyzer=default_tokenize).fit(corpus)

    def for_stream(self, utterances: Sequence[str]):
        """The :data:`ko_mrs.session.SessionScorer` of one stream."""
        vectors = self.vectorizer.transform(utterances)  # rows are l2-normalised

        def scorer(contexts: Sequence[Sequence[int]], i: int) -> list[float]:
            scores = []
            for context in contexts:
                session = np.asarray(vectors[list(context)].sum(axis=0)).ravel()
                norm = np.linalg.norm(session)
                scores.append(1.0 - (float(vectors[i].dot(session)[0] / norm) if norm else 0.0))
            return scores

        return scorer


def oracle_context_auc(
    streams: Sequence[Stream], scorer_for: Callable[[Stream], SessionScorer], context_turns: int
) -> float:
    """Same-session AUC of a scorer with the true sessions as context, so no segmentation error compounds.

    Each utterance after the first is judged against the latest ``context_turns`` turns before it of the
    previous utterance's dialogue: positive when it continues that dialogue. 0.5 is chance.
    """
    same, other = [], []
    for stream in streams:
        scorer = scorer_for(stream)
        for i in range(1, len(stream.labels)):
            previous = stream.labels[i - 1]
            context = [j for j in range(i) if stream.labels[j] == previous][-context_turns:]
            same.append(stream.labels[i] == previous)
            other.append(scorer([context], i)[0])
    return float(roc_auc_score(same, -np.asarray(other)))
