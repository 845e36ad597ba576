"""Negative candidates, the one place they are drawn: fine-tuning pairs, post-training URC candidates, eval groups.

RNG discipline: every draw takes a generator that its caller seeded for one example, so a draw depends on the
example alone (not on batch order, process count or resuming): :func:`context_rng` for a fine-tuning context,
:func:`window_rng` for a post-training window (numpy, because its MLM draws are array operations). The one
exception is :func:`ko_mrs.dialogue_data.build_eval_groups`, which walks a file with one ``random.Random(seed)``
so that group files written before stay the same groups.

Random negatives rarely share a word with the context, so a cross-encoder trained only on them can learn "the
reply that repeats the context's words is the next one" (the keyword bias of the original wish list). Lexical hard
negatives are utterances of *other* dialogues that BM25 ranks highest for the context: they share its words but
are not its reply. :class:`NegativeSampler` mixes the two kinds by ratio, reproducibly from a per-context RNG.

Mining runs BM25 (``bm25s``) over every utterance of the pool, once per training set; the result is a
``datasets.Dataset`` (one row per dialogue) cached under a fingerprint of the data and the mining settings. bm25s
scores every indexed utterance for every query, so one index over a large pool costs time quadratic in its size;
a pool of more than ``shard_size`` utterances is split into shards by dialogue, and each context searches its own
dialogue's shard: linear time, and every utterance still serves as a hard negative for some contexts.
"""

from __future__ import annotations

import logging
import os
import random
import unicodedata
from collections.abc import Callable, Sequence
from functools import cache
from typing import TYPE_CHECKING, NamedTuple

import bm25s
import numpy as np
import torch
from datasets import Dataset, Features, List, Value
from datasets.fingerprint import Hasher

from ko_mrs.bm25 import default_tokenize

if TYPE_CHECKING:
    from ko_mrs.preprocessing import DialoguePool

logger = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every indexing step at DEBUG

__all__ = [
    "HARD_NEGATIVE_TOKENIZERS",
    "NegativeCandidate",
    "NegativeSampler",
    "Rng",
    "context_rng",
    "lexical_tokenizer",
    "mine_hard_negatives",
    "normalise",
    "window_rng",
]

HARD_NEGATIVE_TOKENIZERS = ("char_bigram", "kiwi")
# The query is the latest turns of the context: the reply answers them, and older turns dilute the match.
QUERY_TURNS = 3
# From this many utterances on, bm25s retrieves with numba (6x the contexts/s; BENCHMARKS.md) where it is
# installed: below it, compiling the kernels (about 20 s) costs more than it saves.
_NUMBA_FROM = 20_000
# Retrieval depth before filtering: candidates of the same dialogue and copies of the positive are dropped.
_OVERFETCH = 4
# Utterances per BM25 index: a query costs time linear in its index's size (2,100 queries per core-second at
# 80,000 utterances; BENCHMARKS.md section 10), and the top 10 of 100,000 random utterances already share the
# context's words.
SHARD_SIZE = 100_000

# Kiwi part-of-speech tags kept as index terms: nouns, verb and adjective stems, adverbs, roots, foreign words
# and numbers. Particles (J*), endings (E*) and affixes carry grammar that every utterance shares.
_KIWI_CONTENT = ("NN", "NP", "NR", "VV", "VA", "MA", "XR", "SL", "SH", "SN")

MINED_FEATURES = Features({"hard_dialogue": List(List(Value("int32"))), "hard_position": List(List(Value("int32")))})


# The two generator kinds of the seeded draws (see the module docstring).
Rng = random.Random | np.random.Generator


class NegativeCandidate(NamedTuple):
    """An utterance of the pool offered as a wrong reply."""

    dialogue: int
    position: int


def context_rng(seed: int, dialogue: int) -> random.Random:
    """The generator of one fine-tuning dialogue's negatives (all its contexts, in order)."""
    return random.Random(f"{seed}:{dialogue}")


def window_rng(seed: int, epoch: int, dialogue: int, position: int) -> np.random.Generator:
    """The generator of one post-training window's draws in one epoch: its URC candidate, then its masks."""
    return np.random.default_rng([seed, epoch, dialogue, position])


def _below(rng: Rng, n: int) -> int:
    """A uniform integer in ``[0, n)``, drawn as each generator kind always drew it (so draws stay reproducible)."""
    return rng.randrange(n) if isinstance(rng, random.Random) else int(rng.integers(n))


def normalise(text: str) -> str:
    """Text as compared for near-duplicates: NFKC, lower case, without spaces and punctuation."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] not in "PSCZ")


@cache
def kiwi():
    """The one Kiwi analyser (mining and the adversarial perturbations share it): loading its model takes seconds."""
    from kiwipiepy import Kiwi  # its model ships in the wheel; imported only when chosen

    return Kiwi(num_workers=-1)  # -1: a thread per core


def _kiwi_terms(texts: Sequence[str]) -> list[list[str]]:
    """Kiwi analyses the whole list in one call, on all cores: 40,000 single calls would take minutes."""
    return [[t.form for t in tokens if t.tag.startswith(_KIWI_CONTENT)] for tokens in kiwi().tokenize(list(texts))]


def lexical_tokenizer(name: str) -> Callable[[Sequence[str]], list[list[str]]]:
    """Index terms of a list of texts. ``char_bigram``: eojeols and their character bigrams (the BM25 baseline's);
    ``kiwi``: content morphemes (nouns, stems, adverbs, roots)."""
    if name == "char_bigram":
        return lambda texts: [default_tokenize(text) for text in texts]
    if name == "kiwi":
        return _kiwi_terms
    raise ValueError(f"hard_negative_tokenizer must be one of {HARD_NEGATIVE_TOKENIZERS}, got {name!r}")


class _Shard(NamedTuple):
    """One BM25 index over part of the pool: ``docs`` maps its rows to pool utterances."""

    retriever: bm25s.BM25
    docs: np.ndarray
    n_threads: int


def _threads() -> int:
    """The cores this process may use (numba retrieval runs a thread per query batch slice on each)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def mine_hard_negatives(
    dialogues: Dataset,
    *,
    tokenizer: str = "char_bigram",
    top_k: int = 10,
    same_corpus: bool = True,
    shard_size: int = SHARD_SIZE,
) -> Dataset:
    """For every context of every dialogue, the ``top_k`` utterances of other dialogues BM25 ranks highest.

    Row ``d`` of the result holds, for each position ``t`` >= 1 of dialogue ``d`` (the reply to utterances
    ``..t-1``), the dialogue and position lists of its hard negatives, best first. Never an utterance of ``d``,
    never one whose :func:`normalise`-d text equals the true reply's; with ``same_corpus`` only the context's
    corpus. A pool of more than ``shard_size`` utterances is searched in shards: dialogue ``d``'s contexts search
    the utterances of the dialogues ``d'`` with ``d' % n == d % n`` (``n`` shards). Cached by ``datasets``
    under a fingerprint of the dialogues and these settings.
    """
    if top_k < 1:
        raise ValueError(f"hard_negative_pool_top_k must be at least 1, got {top_k}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    tokenize = lexical_tokenizer(tokenizer)
    fingerprint = Hasher.hash(
        [dialogues._fingerprint, tokenizer, top_k, same_corpus, QUERY_TURNS, shard_size, "mine-v1"]
    )
    state: dict[str, object] = {}

    def index() -> dict[str, object]:
        """Built on the first batch only, so a cached result costs no indexing."""
        if not state:
            turns = dialogues.select_columns(["utterances"]).to_dict()["utterances"]  # plain lists: no Arrow reads
            corpus = dialogues["corpus"][:] if same_corpus and "corpus" in dialogues.column_names else None
            owner = np.repeat(np.arange(len(turns)), [len(t) for t in turns])
            position = np.concatenate([np.arange(len(t)) for t in turns]) if turns else np.zeros(0, np.int64)
            texts = [u for t in turns for u in t]
            terms = tokenize(texts)
            n_shards = max(1, -(-len(texts) // shard_size))
            shards = []
            for shard in range(n_shards):
                docs = np.flatnonzero(owner % n_shards == shard)
                retriever = bm25s.BM25(backend="auto" if len(docs) > _NUMBA_FROM else "numpy")
                retriever.index([terms[i] or [""] for i in docs], show_progress=False)
                shards.append(_Shard(retriever, docs, _threads() if retriever.backend == "numba" else 0))
            state.update(
                turns=turns,
                terms=terms,
                first=np.concatenate([[0], np.cumsum([len(t) for t in turns])]).astype(np.int64),
                owner=owner,
                position=position,
                normalised=[normalise(u) for u in texts],
                corpus=None if corpus is None else np.asarray(corpus)[owner],
                dialogue_corpus=corpus,
                shards=shards,
            )
            logger.info(
                "BM25 index (%s terms) over %d utterances of %d dialogues, in %d shard(s)",
                tokenizer, len(texts), len(turns), n_shards,
            )  # fmt: skip
        return state

    def search(shard: _Shard, queries: list[list[str]]) -> list[np.ndarray]:
        """The best documents of ``shard`` for each query, as indices into the whole pool."""
        k = min(len(shard.docs), top_k * _OVERFETCH + 16)
        threads = torch.get_num_threads()
        try:
            found = shard.retriever.retrieve(queries, k=k, show_progress=False, n_threads=shard.n_threads)[0]
        finally:  # numba's OpenMP layer sets the process's OpenMP thread count, which torch's training then uses
            torch.set_num_threads(threads)
        return [shard.docs[row] for row in found]

    def mine(batch_ids: list[int]) -> dict[str, list]:
        s = index()
        shards: list[_Shard] = s["shards"]
        queries: dict[int, list[list[str]]] = {}
        keys: dict[int, list[tuple[int, int]]] = {}
        for d in batch_ids:
            base, shard = int(s["first"][d]), d % len(shards)
            for t in range(1, len(s["turns"][d])):
                turns = s["terms"][base + max(0, t - QUERY_TURNS) : base + t]  # each utterance tokenised once
                queries.setdefault(shard, []).append([term for turn in turns for term in turn] or [""])
                keys.setdefault(shard, []).append((d, t))
        mined: dict[int, tuple[list[list[int]], list[list[int]]]] = {d: ([], []) for d in batch_ids}
        # a dialogue's contexts all search one shard, so each keeps its order within the dialogue
        for shard, shard_queries in queries.items():
            for (d, t), docs in zip(keys[shard], search(shards[shard], shard_queries), strict=True):
                positive = normalise(s["turns"][d][t])
                corpus = None if s["corpus"] is None else s["dialogue_corpus"][d]
                hard_d, hard_p = [], []
                owners, positions = s["owner"][docs].tolist(), s["position"][docs].tolist()
                corpora = s["corpus"][docs].tolist() if corpus is not None else [None] * len(owners)
                for doc, other, p, c in zip(docs.tolist(), owners, positions, corpora, strict=True):
                    if other == d or c != corpus or s["normalised"][doc] == positive:
                        continue
                    hard_d.append(other)
                    hard_p.append(p)
                    if len(hard_d) == top_k:
                        break
                mined[d][0].append(hard_d)
                mined[d][1].append(hard_p)
        return {"hard_dialogue": [mined[d][0] for d in batch_ids], "hard_position": [mined[d][1] for d in batch_ids]}

    ids = Dataset.from_dict({"d": list(range(len(dialogues)))})
    return ids.map(
        mine,
        batched=True,
        batch_size=2048,
        input_columns=["d"],
        remove_columns=["d"],
        features=MINED_FEATURES,
        new_fingerprint=fingerprint,
        desc="Mining hard negatives",
    )


class NegativeSampler:
    """Draws negatives on a :class:`~ko_mrs.preprocessing.DialoguePool`: random, same-dialogue, hard or generated.

    A context's negatives are each a hard negative with probability ``hard_ratio``, a generated adversarial one
    (:func:`ko_mrs.adversarial.generate_negatives`: a perturbation of the context's own true reply) with
    probability ``adversarial_ratio``, else random. Hard and generated ones are drawn without replacement from the
    context's list (falling back to random when it runs out); random ones are an utterance of another dialogue of
    the same corpus (any corpus where the dialogue is alone in its own: a model trained on mixed corpora otherwise
    learns to tell corpora apart rather than replies).
    """

    def __init__(
        self,
        pool: DialoguePool,
        hard: Dataset | None = None,
        hard_ratio: float = 0.0,
        adversarial: Dataset | None = None,
        adversarial_ratio: float = 0.0,
    ) -> None:
        for name, ratio, lists in (("hard", hard_ratio, hard), ("adversarial", adversarial_ratio, adversarial)):
            if not 0.0 <= ratio <= 1.0:
                raise ValueError(f"{name}_negative_ratio must be within [0, 1], got {ratio}")
            if ratio > 0 and lists is None:
                raise ValueError(f"a {name}_negative_ratio above 0 needs {name} negatives")
            if lists is not None and len(lists) != len(pool):
                raise ValueError(f"{name} negatives cover {len(lists)} dialogues, the pool holds {len(pool)}")
        if hard_ratio + adversarial_ratio > 1.0:
            raise ValueError(f"hard and adversarial negative ratios add up to {hard_ratio + adversarial_ratio} > 1")
        self.pool = pool
        self.hard = hard
        self.hard_ratio = hard_ratio
        self.adversarial = adversarial
        self.adversarial_ratio = adversarial_ratio

    @staticmethod
    def _lists(lists: Dataset | None, dialogues: Sequence[int]) -> dict[int, list[list[NegativeCandidate]]]:
        if lists is None:
            return {}
        unique = sorted(set(int(d) for d in dialogues))
        rows = lists[unique]
        return {
            d: [[NegativeCandidate(*c) for c in zip(ds, ps, strict=True)] for ds, ps in zip(dl, pl, strict=True)]
            for d, dl, pl in zip(unique, rows["hard_dialogue"], rows["hard_position"], strict=True)
        }

    def hard_rows(self, dialogues: Sequence[int]) -> dict[int, list[list[NegativeCandidate]]]:
        """The mined lists of these dialogues (one Arrow read), per position ``t - 1``; empty without mining."""
        return self._lists(self.hard if self.hard_ratio > 0 else None, dialogues)

    def adversarial_rows(self, dialogues: Sequence[int]) -> dict[int, list[list[NegativeCandidate]]]:
        """The generated lists of these dialogues, per position ``t - 1``, as :meth:`hard_rows`."""
        return self._lists(self.adversarial if self.adversarial_ratio > 0 else None, dialogues)

    def other_dialogue(self, dialogue: int, rng: Rng) -> int:
        """A random dialogue of the same corpus that is not ``dialogue`` (any corpus if it is alone)."""
        members = self.pool.corpus_members(dialogue)
        if len(members) < 2:
            members = np.arange(len(self.pool))
            if len(members) < 2:
                raise ValueError("drawing a negative needs at least two dialogues")
        while True:
            other = int(members[_below(rng, len(members))])
            if other != dialogue:
                return other

    def random_negative(self, dialogue: int, rng: Rng) -> NegativeCandidate:
        """Any utterance of another dialogue (see :meth:`other_dialogue`)."""
        other = self.other_dialogue(dialogue, rng)
        return NegativeCandidate(other, _below(rng, int(self.pool.num_turns[other])))

    def same_dialogue_negative(self, dialogue: int, position: int, rng: Rng) -> NegativeCandidate:
        """Another utterance of ``dialogue``, anywhere but ``position`` (a context turn too, as in BERT-FP)."""
        other_position = _below(rng, int(self.pool.num_turns[dialogue]) - 1)
        return NegativeCandidate(dialogue, other_position + (other_position >= position))

    def draw(
        self,
        dialogue: int,
        n: int,
        rng: random.Random,
        hard: Sequence[NegativeCandidate] = (),
        adversarial: Sequence[NegativeCandidate] = (),
    ) -> list[NegativeCandidate]:
        """``n`` negatives for a context of ``dialogue``; ``hard`` and ``adversarial`` are its lists (see
        :meth:`hard_rows`, :meth:`adversarial_rows`). Without either ratio the RNG draws exactly as it always did."""
        lists = ((self.hard_ratio, list(hard)), (self.adversarial_ratio, list(adversarial)))
        mixing = self.hard_ratio > 0 or self.adversarial_ratio > 0
        out = []
        for _ in range(n):
            u, choice = (rng.random() if mixing else 1.0), None
            for ratio, left in lists:
                if u < ratio:
                    choice = left.pop(rng.randrange(len(left))) if left else None
                    break
                u -= ratio
            out.append(choice if choice is not None else self.random_negative(dialogue, rng))
        return out
