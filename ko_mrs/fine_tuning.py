"""Response-selection fine-tuning on the Trainer: the losses, the trainer, ranking metrics and predictions.

``run_fine_tuning.py`` wires these to its arguments. Training and evaluation score pairs through
:mod:`ko_mrs.scoring`, as :class:`ko_mrs.ranking.ResponseSelector` does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.nn import functional as F
from transformers import EvalPrediction

from ko_mrs.bm25 import bm25_scores
from ko_mrs.dialogue_data import write_jsonl
from ko_mrs.metrics import compute_ranking_metrics, format_metrics_table
from ko_mrs.scoring import next_label_index, predict
from ko_mrs.training import MrsTrainer, MrsTrainingArguments, train_resuming
from modeling_mrs import next_log_odds

logger = logging.getLogger(__name__)

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


def write_predictions(
    path: Path, groups: list[dict], scores: np.ndarray, label_ids: tuple, *, log_odds: bool = True
) -> None:
    """One line per candidate, keyed by group id and candidate index, written atomically.

    ``log_odds``: the scores are a cross-encoder's log-odds of "next", so each line also carries P("next") as
    ``ResponseSelector`` gives it; a bi-encoder's similarity is no log-odds, and its lines carry the score alone.
    """
    rows = EvalRows(*label_ids)
    records = (
        {
            "group_id": groups[int(g)]["group_id"],
            "candidate_index": int(c),
            "candidate": groups[int(g)]["candidates"][int(c)],
            "label": int(label),
            "score": float(score),  # what the metrics rank by
            **({"probability": float(1 / (1 + np.exp(-score)))} if log_odds else {}),
        }
        for label, g, c, score in zip(rows.labels, rows.group_id, rows.candidate_index, scores, strict=True)
    )
    write_jsonl(records, path)


def train_evaluate_predict(
    trainer: MrsTrainer,
    checkpoint: str | None,
    *,
    train_samples: int | None,
    test_pairs=None,
    test_groups: list[dict] | None = None,
    test_groups_path: str | None = None,
    bm25_baseline: bool = True,
    model_label: str = "model",
    log_odds: bool = True,
) -> dict[str, float]:
    """The stages a ranking run script asks for (``do_train`` / ``do_eval`` / ``do_predict``), metrics logged and
    saved, test predictions written and the test table beside BM25 logged; returns every stage's metrics.

    Shared by ``run_fine_tuning.py`` (a cross-encoder) and ``run_distillation.py`` (a bi-encoder): both score
    pairs of fixed groups, gathered with their labels, group ids and candidate indices. ``log_odds``: see
    :func:`write_predictions` (False for the bi-encoder).
    """
    args = trainer.args
    metrics: dict[str, float] = {}
    if args.do_train:
        result = train_resuming(trainer, checkpoint)
        trainer.save_model()
        result.metrics["train_samples"] = train_samples
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
        metrics.update(result.metrics)
    if args.do_eval:
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    if args.do_predict:
        output = trainer.predict(test_pairs, metric_key_prefix="test")
        test_metrics = dict(output.metrics)
        table = {model_label: {k.removeprefix("test_"): v for k, v in test_metrics.items()}}
        if bm25_baseline:
            bm25 = bm25_metrics(test_groups)
            test_metrics.update({f"test_bm25_{k}": v for k, v in bm25.items()})
            table["BM25"] = bm25
        trainer.log_metrics("test", test_metrics)
        trainer.save_metrics("test", test_metrics)
        metrics.update(test_metrics)
        if trainer.is_world_process_zero():
            path = Path(args.output_dir) / "test_predictions.jsonl"
            write_predictions(path, test_groups, output.predictions, output.label_ids, log_odds=log_odds)
            logger.info("test groups: %s\n%s", test_groups_path, format_metrics_table(table))
    return metrics
