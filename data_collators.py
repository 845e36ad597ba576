"""Batch assembly for BERT-FP: post-training (MLM + URC) and response-selection fine-tuning (and ranking).

Windows and pairs are integer rows pointing into a :class:`~ko_mrs.preprocessing.DialoguePool`; the
collators fetch the batch's utterances in one Arrow read and lay each example out as
``[CLS] u1 [EOT] u2 [EOT] u3 [SEP] r [SEP]``.

Post-training draws (URC candidate, MLM positions and replacements) come from a generator seeded by
``(seed, epoch, dialogue, position)`` of each example (:func:`ko_mrs.negatives.window_rng`), so an example's
draws depend on nothing else: not on the batch it lands in, the number of processes or dataloader workers, or on
resuming (the Trainer skips batches without collating them). They are fresh every epoch through
:class:`ko_mrs.training.CollatorEpochCallback`.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ko_mrs.negatives import NegativeSampler, window_rng
from ko_mrs.preprocessing import CANDIDATE_COLUMNS, DEFAULT_MAX_LENGTH, EOT_TOKEN, DialoguePool

IGNORE_INDEX = -100

# What each URC label means, by number of labels: BERT-FP's three classes, or the NSP-style ablation.
RANDOM, SAME_DIALOGUE, TRUE_NEXT = "random", "same_dialogue", "true_next"
URC_KINDS: dict[int, tuple[str, ...]] = {3: (RANDOM, SAME_DIALOGUE, TRUE_NEXT), 2: (RANDOM, TRUE_NEXT)}
DEFAULT_URC_PROBABILITIES: dict[int, tuple[float, ...]] = {3: (0.5, 0.25, 0.25), 2: (0.5, 0.5)}


class SpecialIds(NamedTuple):
    cls: int
    sep: int
    eot: int
    pad: int
    mask: int


class Candidate(NamedTuple):
    """A drawn URC response: its label and where it lives in the pool."""

    label: int
    dialogue: int
    position: int


class PairRow(NamedTuple):
    """One (context, response) to assemble: context ``utterances[start:position]`` of ``dialogue``, and the
    response at ``candidate_position`` of ``candidate_dialogue``."""

    dialogue: int
    start: int
    position: int
    candidate_dialogue: int
    candidate_position: int


def special_ids(tokenizer: PreTrainedTokenizerBase) -> SpecialIds:
    """``(cls, sep, eot, pad, mask)`` ids; fails early if ``[EOT]`` was never added to the tokenizer."""
    eot = tokenizer.convert_tokens_to_ids(EOT_TOKEN)
    if eot is None or eot == tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no {EOT_TOKEN} token; add it with preprocessing.add_eot_token")
    ids = (tokenizer.cls_token_id, tokenizer.sep_token_id, eot, tokenizer.pad_token_id, tokenizer.mask_token_id)
    if None in ids:
        raise ValueError(f"the tokenizer lacks one of [CLS], [SEP], [PAD], [MASK]: got {ids}")
    return SpecialIds(*ids)


def assemble_pair(
    context: Sequence[Sequence[int]],
    response: Sequence[int],
    *,
    cls_id: int,
    sep_id: int,
    eot_id: int,
    max_length: int,
) -> tuple[list[int], list[int]]:
    """``[CLS] u1 [EOT] u2 [SEP] r [SEP]`` and its token types (0 up to the first [SEP], 1 after).

    Truncation, as BERT-FP trims whichever side is longer: of the ``max_length - 3`` content tokens
    the response keeps ``min(len(r), max(budget // 2, budget - len(context)))``, i.e. it is cut
    (from the right) only when the context also needs more than half; the context (utterances
    joined by [EOT]) takes the rest, cut from the LEFT so the latest turns survive. A cut that lands
    just after an [EOT] drops that dangling separator.
    """
    budget = max_length - 3
    if budget < 2:
        raise ValueError(f"max_length must be at least 5, got {max_length}")
    flat: list[int] = []
    for i, utterance in enumerate(context):
        if i:
            flat.append(eot_id)
        flat.extend(utterance)
    keep_response = min(len(response), max(budget // 2, budget - len(flat)))
    keep_context = min(len(flat), budget - keep_response)
    kept = flat[len(flat) - keep_context :]
    if keep_context < len(flat) and kept and kept[0] == eot_id:
        kept = kept[1:]
    input_ids = [cls_id, *kept, sep_id, *response[:keep_response], sep_id]
    token_types = [0] * (len(kept) + 2) + [1] * (keep_response + 1)
    return input_ids, token_types


def _assemble_batch(
    pool: DialoguePool,
    rows: Sequence[PairRow],
    special: SpecialIds,
    max_length: int,
    pad_to_multiple_of: int | None,
    token_types: bool = True,
) -> dict[str, np.ndarray]:
    """Fetch, assemble and pad rows. ``token_type_ids`` only with ``token_types`` (see :func:`uses_token_types`)."""
    utterances = pool.fetch([r.dialogue for r in rows] + [r.candidate_dialogue for r in rows])
    pairs = [
        assemble_pair(
            utterances[r.dialogue][r.start : r.position],
            utterances[r.candidate_dialogue][r.candidate_position],
            cls_id=special.cls,
            sep_id=special.sep,
            eot_id=special.eot,
            max_length=max_length,
        )
        for r in rows
    ]
    return pad_pairs(pairs, special.pad, max_length, pad_to_multiple_of, token_types)


def pad_pairs(
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    pad_id: int,
    max_length: int,
    pad_to_multiple_of: int | None,
    token_types: bool = True,
) -> dict[str, np.ndarray]:
    """Pad assembled ``(input_ids, token_type_ids)`` pairs into model inputs: the one padding rule of ko-mrs."""
    longest = max(len(ids) for ids, _ in pairs)
    width = longest
    if pad_to_multiple_of:
        width = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
        if width > max_length:  # never pad past what the position embeddings were sized for
            width = max(longest, max_length)
    input_ids = np.full((len(pairs), width), pad_id, dtype=np.int64)
    token_type_ids = np.zeros((len(pairs), width), dtype=np.int64)
    attention_mask = np.zeros((len(pairs), width), dtype=np.int64)
    for i, (ids, types) in enumerate(pairs):
        input_ids[i, : len(ids)] = ids
        token_type_ids[i, : len(ids)] = types
        attention_mask[i, : len(ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if token_types:
        batch["token_type_ids"] = token_type_ids
    return batch


def _to_tensors(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(value) for key, value in arrays.items()}


def draw_candidate(
    rng: np.random.Generator,
    sampler: NegativeSampler,
    dialogue: int,
    position: int,
    cumulative_probabilities: Sequence[float],
    kinds: Sequence[str],
) -> Candidate:
    """Draw a URC label and its response for the window ending at ``position`` of ``dialogue``.

    ``SAME_DIALOGUE``: another utterance of the dialogue, anywhere but ``position`` (it may be a
    context turn, as in BERT-FP's code). ``RANDOM``: any utterance of another dialogue of the same
    corpus. ``TRUE_NEXT``: the utterance at ``position``.
    """
    label = min(bisect.bisect_right(cumulative_probabilities, rng.random()), len(kinds) - 1)
    kind = kinds[label]
    if kind == TRUE_NEXT:
        return Candidate(label, dialogue, position)
    negative = (
        sampler.same_dialogue_negative(dialogue, position, rng)
        if kind == SAME_DIALOGUE
        else sampler.random_negative(dialogue, rng)
    )
    return Candidate(label, *negative)


@dataclass
class PostTrainingCollator:
    """BERT-FP post-training batches: MLM ``labels`` and URC ``urc_labels`` over window rows.

    ``urc_probabilities`` gives P(label) in label order: for 3 labels, (another dialogue, another
    utterance of the same dialogue, the true next utterance), BERT-FP's 50/25/25 by default; for
    ``num_urc_labels=2`` (NSP-style ablation), (another dialogue, true next), 50/50 by default.
    MLM masks ``mlm_probability`` of the maskable (non-special) tokens, BERT's 80/10/10; with
    ``whole_word_masking`` a word (a token and its following ``##`` pieces) is masked whole.
    """

    tokenizer: PreTrainedTokenizerBase
    pool: DialoguePool
    max_length: int = DEFAULT_MAX_LENGTH
    mlm_probability: float = 0.15
    urc_probabilities: tuple[float, ...] | None = None
    num_urc_labels: int = 3
    whole_word_masking: bool = False
    pad_to_multiple_of: int | None = 8
    seed: int = 42
    epoch: int = 0
    _sampler: NegativeSampler = field(init=False, repr=False)
    _special: SpecialIds = field(init=False, repr=False)
    _is_special: np.ndarray = field(init=False, repr=False)
    _is_continuation: np.ndarray = field(init=False, repr=False)
    _replacement_ids: np.ndarray = field(init=False, repr=False)
    _cumulative: list[float] = field(init=False, repr=False)
    _token_types: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.num_urc_labels not in URC_KINDS:
            raise ValueError(f"num_urc_labels must be 2 or 3, got {self.num_urc_labels}")
        if self.urc_probabilities is None:
            self.urc_probabilities = DEFAULT_URC_PROBABILITIES[self.num_urc_labels]
        probabilities = tuple(float(p) for p in self.urc_probabilities)
        if len(probabilities) != self.num_urc_labels or min(probabilities) < 0 or abs(sum(probabilities) - 1) > 1e-6:
            raise ValueError(
                f"urc_probabilities must be {self.num_urc_labels} non-negative numbers summing to 1, "
                f"got {probabilities}"
            )
        if not 0 <= self.mlm_probability <= 1:
            raise ValueError(f"mlm_probability must be in [0, 1], got {self.mlm_probability}")
        self.urc_probabilities = probabilities
        self._cumulative = np.cumsum(probabilities).tolist()
        self._cumulative[-1] = 1.0  # rounding must never leave a draw above the last bound
        self._sampler = NegativeSampler(self.pool)
        self._special = special_ids(self.tokenizer)
        self._token_types = uses_token_types(self.tokenizer)
        vocab_size = len(self.tokenizer)
        self._is_special = np.zeros(vocab_size, dtype=bool)
        self._is_special[self.tokenizer.all_special_ids] = True
        self._replacement_ids = np.flatnonzero(~self._is_special)
        tokens = self.tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
        self._is_continuation = np.array([t is not None and t.startswith("##") for t in tokens], dtype=bool)

    def draw(self, feature: Mapping[str, int]) -> tuple[np.random.Generator, Candidate]:
        """The example's generator and its URC candidate; the generator then goes on to draw the MLM."""
        dialogue, position = int(feature["dialogue"]), int(feature["position"])
        rng = window_rng(self.seed, self.epoch, dialogue, position)
        candidate = draw_candidate(
            rng, self._sampler, dialogue, position, self._cumulative, URC_KINDS[self.num_urc_labels]
        )
        return rng, candidate

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        draws = [self.draw(f) for f in features]
        rows = [
            PairRow(int(f["dialogue"]), int(f["start"]), int(f["position"]), c.dialogue, c.position)
            for f, (_, c) in zip(features, draws, strict=True)
        ]
        batch = _assemble_batch(
            self.pool, rows, self._special, self.max_length, self.pad_to_multiple_of, self._token_types
        )
        input_ids = batch["input_ids"]
        maskable = ~self._is_special[input_ids]  # [PAD] is special too, so padding is never masked
        starts = None
        if self.whole_word_masking:  # a word starts at a maskable token that does not continue one
            previous = np.pad(maskable[:, :-1], ((0, 0), (1, 0)))
            starts = maskable & ~(self._is_continuation[input_ids] & previous)
        labels = np.full_like(input_ids, IGNORE_INDEX)
        for i, (rng, _) in enumerate(draws):
            masked = self._select(maskable[i], None if starts is None else starts[i], rng)
            labels[i, masked] = input_ids[i, masked]
            action, pick = rng.random((2, len(masked)))
            random_ids = self._replacement_ids[(pick * len(self._replacement_ids)).astype(np.int64)]
            input_ids[i, masked] = np.where(
                action < 0.8, self._special.mask, np.where(action < 0.9, random_ids, input_ids[i, masked])
            )
        batch["labels"] = labels
        batch["urc_labels"] = np.array([c.label for _, c in draws], dtype=np.int64)
        return _to_tensors(batch)

    def _select(self, maskable: np.ndarray, starts: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """Positions to mask in one row, as Google's ``create_pretraining_data``: ``round(p * maskable)``.

        Words are taken in random order, a word skipped if it would overshoot the target. Without
        whole-word masking (``starts is None``) every token is a word, so that greedy fill reduces to
        the first ``target`` positions of the permutation.
        """
        positions = np.flatnonzero(maskable)
        target = int(len(positions) * self.mlm_probability + 0.5)
        if starts is None:
            return positions[rng.permutation(len(positions))[:target]]
        word_of = np.cumsum(starts)[positions] - 1
        word_lengths = np.bincount(word_of).tolist()
        chosen = np.zeros(len(word_lengths), dtype=bool)
        total = 0
        for word in rng.permutation(len(word_lengths)).tolist():
            if total >= target:
                break
            if total + word_lengths[word] <= target:
                chosen[word] = True
                total += word_lengths[word]
        return positions[chosen[word_of]]


class SelectionPair(NamedTuple):
    """A pair row of fine-tuning or evaluation: what to assemble, its 0/1 label, and where it belongs.

    ``group_id`` is the evaluation group's index and ``candidate_index`` the candidate's index in it;
    both are -1 for training rows, which belong to no group.
    """

    row: PairRow
    label: int
    group_id: int
    candidate_index: int


@dataclass
class ResponseSelectionCollator:
    """Fine-tuning and evaluation batches over pair rows: 0/1 ``labels``, ``group_id`` and ``candidate_index``.

    A listwise row (``candidate_*`` and ``label`` are lists, positive first; see
    ``ko_mrs.preprocessing.build_pairs(listwise=True)``) becomes its pairs, consecutive, so the batch holds
    ``len(features)`` groups of equal size. No randomness: negatives were drawn when the rows were built.
    """

    tokenizer: PreTrainedTokenizerBase
    pool: DialoguePool
    max_length: int = DEFAULT_MAX_LENGTH
    pad_to_multiple_of: int | None = 8
    _special: SpecialIds = field(init=False, repr=False)
    _token_types: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._special = special_ids(self.tokenizer)
        self._token_types = uses_token_types(self.tokenizer)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        pairs = [pair for f in features for pair in selection_pairs(f)]
        rows = [p.row for p in pairs]
        batch = _assemble_batch(
            self.pool, rows, self._special, self.max_length, self.pad_to_multiple_of, self._token_types
        )
        for key in ("label", "group_id", "candidate_index"):
            batch["labels" if key == "label" else key] = np.array([getattr(p, key) for p in pairs], dtype=np.int64)
        return _to_tensors(batch)


def selection_pairs(feature: Mapping) -> list[SelectionPair]:
    """The pairs of a pointwise row (itself) or of a listwise row (one per candidate, positive first)."""
    context = [int(feature[key]) for key in ("dialogue", "start", "position")]
    columns = [feature[key] for key in CANDIDATE_COLUMNS]
    if not isinstance(feature["label"], Sequence):
        columns = [[value] for value in columns]
    group_id, candidate_index = int(feature["group_id"]), int(feature["candidate_index"])
    return [
        SelectionPair(PairRow(*context, int(dialogue), int(position)), int(label), group_id, candidate_index)
        for dialogue, position, label in zip(*columns, strict=True)
    ]


def uses_token_types(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether pairs carry token types (0 context, 1 reply): only for tokenizers that produce them.

    XLM-R-style tokenizers (multilingual-e5, RoBERTa) do not list ``token_type_ids``; their models see
    type 0 everywhere, in training and in ranking alike.
    """
    return "token_type_ids" in tokenizer.model_input_names
