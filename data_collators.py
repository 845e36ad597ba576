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
from ko_mrs.speakers import (
    UtteranceFeatures,
    alternating_speakers,
    context_speakers,
    distance_token,
    speaker_token,
    turn_distances,
)

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


@dataclass(frozen=True)
class Markers:
    """:class:`~ko_mrs.speakers.UtteranceFeatures` resolved against a tokenizer: the marker tokens' ids."""

    features: UtteranceFeatures
    speaker_tokens: tuple[int, ...] = ()
    distance_tokens: tuple[int, ...] = ()  # [T1] at index 0

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase, features: UtteranceFeatures) -> Markers | None:
        """None when no feature is on (pairs stay ``[CLS] u1 [EOT] u2 [SEP] r [SEP]``)."""
        if not features.any:
            return None
        vocab = tokenizer.get_vocab()
        missing = [token for token in features.tokens() if token not in vocab]
        if missing:
            raise ValueError(f"the tokenizer lacks {', '.join(missing)}; add them with UtteranceFeatures.add_tokens")
        speakers = features.speaker_encoding == "tokens"
        distances = features.turn_distance_encoding == "tokens"
        return cls(
            features,
            tuple(vocab[speaker_token(i)] for i in range(features.max_speakers)) if speakers else (),
            tuple(vocab[distance_token(d)] for d in range(1, features.max_turn_distance + 1)) if distances else (),
        )

    def prefix(self, speaker: int, distance: int) -> list[int]:
        """The marker tokens before an utterance (distance 0: the reply)."""
        out = [self.speaker_tokens[speaker]] if self.speaker_tokens else []
        if self.distance_tokens and distance:
            out.append(self.distance_tokens[distance - 1])
        return out


def assemble_pair(
    context: Sequence[Sequence[int]],
    response: Sequence[int],
    *,
    cls_id: int,
    sep_id: int,
    eot_id: int,
    max_length: int,
    speakers: Sequence[int] | None = None,
    markers: Markers | None = None,
) -> tuple[list[int], ...]:
    """``[CLS] u1 [EOT] u2 [SEP] r [SEP]`` and its token types (0 up to the first [SEP], 1 after).

    Truncation, as BERT-FP trims whichever side is longer: of the ``max_length - 3`` content tokens
    the response keeps ``min(len(r), max(budget // 2, budget - len(context)))``, i.e. it is cut
    (from the right) only when the context also needs more than half; the context (utterances
    joined by [EOT]) takes the rest, cut from the LEFT so the latest turns survive. A cut that lands
    just after an [EOT] drops that dangling separator.

    With ``markers`` (:mod:`ko_mrs.speakers`), ``speakers`` gives each context turn's relative speaker (None:
    two-party alternation). Token encodings put ``[SPKi]`` / ``[Td]`` before each utterance (``[SPK0]`` before
    the reply); embedding encodings add one row per token after the token types, ``speaker_ids`` then
    ``turn_ids`` (as ``markers.features.embedding_inputs`` names them): the utterance's speaker and distance
    on its tokens and its [EOT], 0 on [CLS], [SEP] and the reply.
    """
    budget = max_length - 3
    if budget < 2:
        raise ValueError(f"max_length must be at least 5, got {max_length}")
    features = markers.features if markers is not None else UtteranceFeatures()
    if speakers is None:
        speakers = alternating_speakers(len(context))
    elif len(speakers) != len(context):
        raise ValueError(f"speakers has {len(speakers)} entries for {len(context)} context turns")
    distances = turn_distances(len(context), features.max_turn_distance)
    flat: list[int] = []
    per_token: list[tuple[int, int]] = []  # (speaker, distance) of each context token
    for i, utterance in enumerate(context):
        piece = [*(markers.prefix(speakers[i], distances[i]) if markers else ()), *utterance]
        if i < len(context) - 1:
            piece.append(eot_id)
        flat.extend(piece)
        per_token.extend([(speakers[i], distances[i])] * len(piece))
    if markers is not None and markers.speaker_tokens:
        response = [markers.speaker_tokens[0], *response]
    keep_response = min(len(response), max(budget // 2, budget - len(flat)))
    keep_context = min(len(flat), budget - keep_response)
    first = len(flat) - keep_context
    if keep_context < len(flat) and keep_context and flat[first] == eot_id:
        first += 1
    kept = flat[first:]
    input_ids = [cls_id, *kept, sep_id, *response[:keep_response], sep_id]
    token_types = [0] * (len(kept) + 2) + [1] * (keep_response + 1)
    out = [input_ids, token_types]
    tail = [0] * (keep_response + 2)
    for column, name in enumerate(("speaker_ids", "turn_ids")):
        if name in features.embedding_inputs:
            out.append([0, *(row[column] for row in per_token[first:]), *tail])
    return tuple(out)


def _assemble_batch(
    pool: DialoguePool,
    rows: Sequence[PairRow],
    special: SpecialIds,
    max_length: int,
    pad_to_multiple_of: int | None,
    token_types: bool = True,
    markers: Markers | None = None,
) -> dict[str, np.ndarray]:
    """Fetch, assemble and pad rows. ``token_type_ids`` only with ``token_types`` (see :func:`uses_token_types`).

    With ``markers``, each row's context speakers are relative to the speaker of turn ``position`` of its own
    dialogue: whoever says the true next turn says every candidate, negatives included.
    """
    utterances = pool.fetch([r.dialogue for r in rows] + [r.candidate_dialogue for r in rows])
    speakers = pool.fetch_speakers([r.dialogue for r in rows]) if markers and markers.features.uses_speakers else {}
    pairs = [
        assemble_pair(
            utterances[r.dialogue][r.start : r.position],
            utterances[r.candidate_dialogue][r.candidate_position],
            cls_id=special.cls,
            sep_id=special.sep,
            eot_id=special.eot,
            max_length=max_length,
            speakers=(
                context_speakers(speakers[r.dialogue], r.start, r.position, markers.features.max_speakers)
                if speakers
                else None
            ),
            markers=markers,
        )
        for r in rows
    ]
    extra = markers.features.embedding_inputs if markers else ()
    return pad_pairs(pairs, special.pad, max_length, pad_to_multiple_of, token_types, extra)


def pad_pairs(
    pairs: Sequence[Sequence[Sequence[int]]],
    pad_id: int,
    max_length: int,
    pad_to_multiple_of: int | None,
    token_types: bool = True,
    extra: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """Pad assembled ``(input_ids, token_type_ids, *extra)`` pairs into model inputs: the one padding rule of ko-mrs.

    ``extra`` names the per-token rows after the token types (``speaker_ids``, ``turn_ids``), padded with 0.
    """
    longest = max(len(pair[0]) for pair in pairs)
    width = longest
    if pad_to_multiple_of:
        width = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
        if width > max_length:  # never pad past what the position embeddings were sized for
            width = max(longest, max_length)
    input_ids = np.full((len(pairs), width), pad_id, dtype=np.int64)
    token_type_ids = np.zeros((len(pairs), width), dtype=np.int64)
    attention_mask = np.zeros((len(pairs), width), dtype=np.int64)
    rows = {name: np.zeros((len(pairs), width), dtype=np.int64) for name in extra}
    for i, (ids, types, *more) in enumerate(pairs):
        input_ids[i, : len(ids)] = ids
        token_type_ids[i, : len(ids)] = types
        attention_mask[i, : len(ids)] = 1
        for name, values in zip(extra, more, strict=True):
            rows[name][i, : len(ids)] = values
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if token_types:
        batch["token_type_ids"] = token_type_ids
    return batch | rows


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
    ``features`` (:mod:`ko_mrs.speakers`): speakers relative to the window's true next turn, for every URC
    candidate alike; marker tokens are special tokens, so MLM never masks them.
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
    features: UtteranceFeatures = field(default_factory=UtteranceFeatures)
    _markers: Markers | None = field(init=False, repr=False)
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
        self._markers = Markers.from_tokenizer(self.tokenizer, self.features)
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
            self.pool, rows, self._special, self.max_length, self.pad_to_multiple_of, self._token_types, self._markers
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
    ``features`` (:mod:`ko_mrs.speakers`): speakers relative to the context's true next turn, for every candidate.
    """

    tokenizer: PreTrainedTokenizerBase
    pool: DialoguePool
    max_length: int = DEFAULT_MAX_LENGTH
    pad_to_multiple_of: int | None = 8
    features: UtteranceFeatures = field(default_factory=UtteranceFeatures)
    _special: SpecialIds = field(init=False, repr=False)
    _token_types: bool = field(init=False, repr=False)
    _markers: Markers | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._special = special_ids(self.tokenizer)
        self._token_types = uses_token_types(self.tokenizer)
        self._markers = Markers.from_tokenizer(self.tokenizer, self.features)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        pairs = [pair for f in features for pair in selection_pairs(f)]
        rows = [p.row for p in pairs]
        batch = _assemble_batch(
            self.pool, rows, self._special, self.max_length, self.pad_to_multiple_of, self._token_types, self._markers
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
