"""What a response-selection run trains and is tested on, for the cross-encoder and the bi-encoder alike.

``run_fine_tuning.py`` and ``run_distillation.py`` read the same dialogue files into the same candidate lists
(random, BM25-hard and generated adversarial negatives) and the same fixed group files; only their collators and
models differ. The reading lives here once, so the two scripts cannot drift apart in what they train on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple, Protocol, TypeVar

from datasets import Dataset
from transformers import PreTrainedTokenizerBase, TrainingArguments

from ko_mrs.adversarial import generate_negatives
from ko_mrs.cli_errors import UsageError
from ko_mrs.dialogue_data import read_dialogues, read_eval_groups, require_two_dialogues
from ko_mrs.negatives import NegativeSampler, mine_hard_negatives
from ko_mrs.preprocessing import DialoguePool, build_pairs, groups_to_pairs, tokenize_dialogues

logger = logging.getLogger(__name__)

C = TypeVar("C")


class SelectionDataArguments(Protocol):
    """The data arguments both scripts share (each declares them in its own ``DataArguments``)."""

    train_files: list[str]
    validation_groups: str | None
    test_groups: str | None
    every_prefix: bool
    negatives_per_positive: int
    hard_negative_ratio: float
    hard_negative_tokenizer: str
    hard_negative_pool_top_k: int
    max_turns: int | None
    same_corpus_negatives: bool
    skip_short: bool
    max_train_samples: int | None


class TrainingRows(NamedTuple):
    """Candidate lists (or pairs) to train on, the pool their token ids point into, and the dialogues read."""

    rows: Dataset
    pool: DialoguePool
    dialogues: Dataset


class GroupRows(NamedTuple):
    """Fixed evaluation groups as scoring rows, with the collator that lays them out; both None when unused."""

    rows: Dataset | None
    collator: object | None


def read_group_files(
    data_args: SelectionDataArguments, training_args: TrainingArguments
) -> tuple[list[dict] | None, list[dict] | None]:
    """The validation and test groups of the stages that run; a config may name files a run does not use."""
    if training_args.do_eval and data_args.validation_groups is None:
        raise UsageError("--do_eval needs --validation_groups (write them with `mrs-data groups`)")
    if training_args.do_predict and data_args.test_groups is None:
        raise UsageError("--do_predict needs --test_groups (write them with `mrs-data groups`)")
    validation = read_eval_groups(data_args.validation_groups) if training_args.do_eval else None
    test = read_eval_groups(data_args.test_groups) if training_args.do_predict else None
    return validation, test


def build_training_rows(
    data_args: SelectionDataArguments,
    tokenizer: PreTrainedTokenizerBase,
    *,
    seed: int,
    listwise: bool,
    adversarial_ratio: float = 0.0,
) -> TrainingRows:
    """Read ``train_files`` and build every context's candidate list (``listwise``) or its pairs.

    Negatives are BM25-hard with probability ``hard_negative_ratio``, generated adversarial ones (``adversarial``
    module) with ``adversarial_ratio``, else random from the pool.
    """
    if not data_args.train_files:
        raise UsageError("--do_train needs --train_files")
    dialogues, reports = read_dialogues(data_args.train_files, skip_short=data_args.skip_short)
    for report in reports:
        logger.info("read %s", report)
    require_two_dialogues(dialogues, data_args.train_files)
    tokenized = tokenize_dialogues(dialogues, tokenizer)
    generated = extra = None
    if adversarial_ratio > 0:
        generated = generate_negatives(dialogues, seed=seed)
        extra = tokenize_dialogues(generated.texts, tokenizer)
    pool = DialoguePool(tokenized, same_corpus_negatives=data_args.same_corpus_negatives, extra=extra)
    hard = None
    if data_args.hard_negative_ratio > 0:
        hard = mine_hard_negatives(
            dialogues,
            tokenizer=data_args.hard_negative_tokenizer,
            top_k=data_args.hard_negative_pool_top_k,
            same_corpus=data_args.same_corpus_negatives,
        )
    sampler = NegativeSampler(
        pool, hard, data_args.hard_negative_ratio, None if generated is None else generated.lists, adversarial_ratio
    )
    rows = build_pairs(
        tokenized,
        pool,
        every_prefix=data_args.every_prefix,
        negatives_per_positive=data_args.negatives_per_positive,
        max_turns=data_args.max_turns,
        seed=seed,
        listwise=listwise,
        sampler=sampler,
    )
    if data_args.max_train_samples is not None:
        rows = rows.select(range(min(data_args.max_train_samples, len(rows))))
    return TrainingRows(rows, pool, dialogues)


def group_rows(
    groups: list[dict] | None,
    tokenizer: PreTrainedTokenizerBase,
    max_turns: int | None,
    collator: Callable[[DialoguePool], C],
) -> GroupRows:
    """Fixed groups as rows to score, with ``collator(pool)`` for them; ``GroupRows(None, None)`` without groups."""
    if groups is None:
        return GroupRows(None, None)
    rows, pool, _ = groups_to_pairs(groups, tokenizer, max_turns=max_turns)
    return GroupRows(rows, collator(pool))
