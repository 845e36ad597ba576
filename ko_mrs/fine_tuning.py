"""Response-selection fine-tuning on the Trainer: the losses, the trainer, ranking metrics and predictions.

``run_fine_tuning.py`` wires these to its arguments. Training and evaluation score pairs through
:mod:`ko_mrs.scoring`, as :class:`ko_mrs.ranking.ResponseSelector` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.nn import functional as F
from transformers import EvalPrediction

from ko_mrs.bm25 import bm25_scores
from ko_mrs.dialogue_data import write_jsonl
from ko_mrs.metrics import compute_ranking_metrics
from ko_mrs.scoring import next_label_index, predict
from ko_mrs.training import MrsTrainer, MrsTrainingArguments
from modeling_mrs import next_log_odds

ID2LABEL = {0: "not_next", 1: "next"}
LOSSES = ("listwise", "cross_entropy", "bce")
POOLINGS = ("cls", "mean")


@dataclass
class FineTuningArguments(MrsTrainingArguments):
    """Trainer arguments with the paper's learning rate; BertForSequenceClassification.forward takes
    **kwargs, so the parent's ``average_tokens_across_devices=False`` matters here."""

    learning_rate: float = field(default=1e-5)
    loss: str = field(
        default="listwise",
        metadata={
            "help": "listwise: softmax cross-entropy over each context's group (1 positive + negatives_per_positive "
            "negatives; per_device_train_batch_size counts groups); cross_entropy: 2-class softmax per pair; bce: "
            "one logit per pair, sigmoid.",
            "choices": LOSSES,
        },
    )
    metric_for_best_model: str | None = field(default="r10@1")
    greater_is_better: bool | None = field(default=True)
    label_names: list[str] | None = field(default_factory=lambda: ["labels"])
    export_onnx: bool = field(
        default=False,
        metadata={
            "help": "At the end, write onnx/model.onnx and onnx/model_qint8.onnx into output_dir (mrs-export; "
            'pip install "ko-mrs[onnx]"): pushed with the model under --push_to_hub, and named in the card.'
        },
    )


class EvalRows(NamedTuple):
    """The per-pair values evaluation gathers beside the scores (a plain tuple travels through Trainer)."""

    labels: np.ndarray
    group_id: np.ndarray
    candidate_index: np.ndarray


def selection_loss(logits: torch.Tensor, labels: torch.Tensor, loss: str, next_index: int = 1) -> torch.Tensor:
    """The training loss over a batch of pairs; listwise batches are consecutive groups, positive first."""
    if loss == "cross_entropy":
        return F.cross_entropy(logits.float(), labels)
    scores = next_log_odds(logits, next_index)
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(scores, labels.float())
    groups = scores.view(int(labels.sum()), -1)  # each group holds exactly one positive, at index 0
    return F.cross_entropy(groups, torch.zeros(len(groups), dtype=torch.long, device=groups.device))


class ResponseSelectionTrainer(MrsTrainer):
    """Trains with ``args.loss``; carries each pair's group id and candidate index through prediction, so
    scores meet their groups by id.

    Evaluation scores every pair by :func:`modeling_mrs.next_log_odds` (the score ``ResponseSelector`` turns into
    a probability) and reports ``eval_loss`` as the binary cross-entropy of that score, the same number for
    every training loss.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.next_index = next_label_index(self.model.config)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logits = predict(model, inputs)
        loss = selection_loss(logits, inputs["labels"], self.args.loss, self.next_index)
        return (loss, {"logits": logits}) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            scores = next_log_odds(predict(model, inputs), self.next_index)
        loss = F.binary_cross_entropy_with_logits(scores, inputs["labels"].float())
        # labels, group ids and candidate indices travel together, so any sampler order or process count is safe
        return loss.detach(), scores, (inputs["labels"], inputs["group_id"], inputs["candidate_index"])


def ranking_metrics(prediction: EvalPrediction) -> dict[str, float]:
    rows = EvalRows(*prediction.label_ids)
    return compute_ranking_metrics(rows.group_id, prediction.predictions, rows.labels)


def bm25_metrics(groups: list[dict]) -> dict[str, float]:
    ids, scores, labels = [], [], []
    for g, group in enumerate(groups):
        scores += bm25_scores(group["context"], group["candidates"])
        ids += [g] * len(group["candidates"])
        labels += group["labels"]
    return compute_ranking_metrics(ids, scores, labels)


def write_predictions(path: Path, groups: list[dict], scores: np.ndarray, label_ids: tuple) -> None:
    """One line per candidate, keyed by group id and candidate index, written atomically."""
    rows = EvalRows(*label_ids)
    records = (
        {
            "group_id": groups[int(g)]["group_id"],
            "candidate_index": int(c),
            "candidate": groups[int(g)]["candidates"][int(c)],
            "label": int(label),
            "score": float(score),  # log-odds of "next", what the metrics rank by
            "probability": float(1 / (1 + np.exp(-score))),  # P("next"), as ResponseSelector gives it
        }
        for label, g, c, score in zip(rows.labels, rows.group_id, rows.candidate_index, scores, strict=True)
    )
    write_jsonl(records, path)
