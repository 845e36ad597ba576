"""The one scoring path: model inputs -> logits -> the log-odds of "next", for the Trainer, ranking and export.

Batches come from :mod:`data_collators` (``ResponseSelectionCollator`` for training and evaluation rows,
``assemble_pair`` + ``pad_pairs`` for ``ResponseSelector``'s texts), so a pair is laid out, truncated and padded
the same way wherever it is scored. The score is :func:`modeling_mrs.next_log_odds`: log P(next) - log P(not next),
whatever the head's shape; ``sigmoid(score)`` is P(next).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from modeling_mrs import next_log_odds

__all__ = ["MODEL_INPUTS", "NEXT_LABEL", "next_label_index", "next_scores", "predict"]

# What a response selector's forward takes; the collators' other columns (labels, group_id, ...) stay out.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "speaker_ids", "turn_ids")
NEXT_LABEL = "next"


def predict(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The model's logits for a collated batch (``[pairs, num_labels]``); a backend replaces this call only."""
    return model(**{key: batch[key] for key in MODEL_INPUTS if key in batch}).logits


def next_scores(model: nn.Module, batch: Mapping[str, torch.Tensor], next_index: int) -> torch.Tensor:
    """The documented score of each pair: the log-odds of "next" (see the module docstring)."""
    return next_log_odds(predict(model, batch), next_index)


def next_label_index(config: Any) -> int:
    """Index of the "next" class: from ``id2label``, else 1 for a 2-class model with generic label names.

    A 1-logit model (fine-tuned with ``--loss bce``) is labelled ``{0: "next"}``: its logit is the log-odds.
    """
    by_name = {str(label).lower(): int(index) for index, label in (config.id2label or {}).items()}
    if NEXT_LABEL in by_name:
        return by_name[NEXT_LABEL]
    if config.num_labels == 2:
        return 1
    raise ValueError(f"expected a 2-class response selection model, got labels {config.id2label}")
