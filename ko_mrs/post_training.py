"""BERT-FP post-training on the Trainer: the trainer, its evaluation outputs and metrics, and the probe batch.

``run_post_training.py`` wires these to its arguments; the model is :mod:`modeling_mrs`'s, the batches
:class:`data_collators.PostTrainingCollator`'s.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from transformers import EvalPrediction

from data_collators import PostTrainingCollator
from ko_mrs.collapse_monitor import DEFAULT_THRESHOLD
from ko_mrs.dialogue_data import read_dialogues, split_by_id
from ko_mrs.head_warmup import parameter_groups, warmup_then_linear_decay
from ko_mrs.session import urc_metrics
from ko_mrs.training import MrsTrainer, MrsTrainingArguments

# Eval draws use a fixed "epoch" so that every evaluation scores the same candidates and masks.
EVAL_EPOCH = 1_000_000


@dataclass
class PostTrainingArguments(MrsTrainingArguments):
    train_sampling_strategy: str = field(default="group_by_length")
    logging_steps: float = field(default=50)
    head_warmup_steps: int | None = field(
        default=None,
        metadata={
            "help": "Steps that train only the heads the checkpoint lacks (MLM head, pooler, URC head), the encoder "
            "frozen. Default: 10% of the run when a head starts fresh, else 0."
        },
    )
    encoder_learning_rate: float | None = field(
        default=None, metadata={"help": "The encoder's learning rate (default: learning_rate, as the heads)."}
    )
    collapse_threshold: float = field(
        default=DEFAULT_THRESHOLD,
        metadata={"help": "Warn when the probe pairs' representation spread falls below this share of its start."},
    )
    probe_size: int = field(default=64, metadata={"help": "Pairs in the collapse monitor's fixed probe batch."})


class PostTrainingPredictions(NamedTuple):
    """What evaluation gathers per example (a plain tuple travels through Trainer; this names its parts).

    ``urc_logits`` is ``[batch, num_urc_labels]`` (``[batch, 1]`` of zeros for MLM-only post-training);
    ``mlm_nll`` the summed MLM negative log-likelihood over the example's masked tokens, ``mlm_count`` their number.
    """

    urc_logits: np.ndarray
    mlm_nll: np.ndarray
    mlm_count: np.ndarray


class PostTrainingTrainer(MrsTrainer):
    """Logs the MLM loss, URC loss and URC accuracy beside the summed loss; warms fresh heads up first.

    With ``head_warmup_steps`` > 0 or an ``encoder_learning_rate``, the encoder and the heads are separate
    optimizer groups, and a linear schedule starts the encoder's warm-up when the head warm-up ends.
    """

    def __init__(self, *args, head_warmup_steps: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.head_warmup_steps = head_warmup_steps
        self._parts = torch.zeros(4, dtype=torch.float64)  # mlm loss, urc loss, urc correct, urc count
        self._steps = 0

    @property
    def _separate_encoder(self) -> bool:
        return self.head_warmup_steps > 0 or self.args.encoder_learning_rate is not None

    def create_optimizer(self, model=None):
        if self.optimizer is None and self._separate_encoder:
            opt_model = self.model if model is None else model
            groups = parameter_groups(
                opt_model,
                set(self.get_decay_parameter_names(opt_model)),
                self.args.learning_rate,
                self.args.encoder_learning_rate,
                self.args.weight_decay,
            )
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return super().create_optimizer(model)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None and self._separate_encoder:
            if str(self.args.lr_scheduler_type) not in ("linear", "SchedulerType.LINEAR"):
                raise ValueError(
                    "head warm-up and --encoder_learning_rate use a linear schedule; got --lr_scheduler_type "
                    f"{self.args.lr_scheduler_type} (set --head_warmup_steps 0 to use it)"
                )
            self.lr_scheduler = warmup_then_linear_decay(
                optimizer or self.optimizer,
                self.args.get_warmup_steps(num_training_steps),
                self.head_warmup_steps,
                num_training_steps,
            )
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        if model.training:
            correct = count = 0.0
            if outputs.urc_logits is not None:
                correct = (outputs.urc_logits.argmax(-1) == inputs["urc_labels"]).sum().item()
                count = inputs["urc_labels"].numel()
            self._parts += torch.tensor(
                [_item(outputs.mlm_loss), _item(outputs.urc_loss), correct, count], dtype=torch.float64
            )
            self._steps += 1
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._steps:
            parts = self.accelerator.reduce(self._parts.to(self.args.device), reduction="sum").cpu()
            steps = self.accelerator.reduce(torch.tensor(float(self._steps), device=self.args.device), "sum").item()
            logs["mlm_loss"] = round(parts[0].item() / steps, 4)
            logs["urc_loss"] = round(parts[1].item() / steps, 4)
            if parts[3] > 0:
                logs["urc_accuracy"] = round(parts[2].item() / parts[3].item(), 4)
            self._parts.zero_()
            self._steps = 0
        super().log(logs, start_time)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Per-example :class:`PostTrainingPredictions`, so evaluation gathers cleanly across processes."""
        with torch.no_grad():
            outputs = model(**inputs)
        input_ids = inputs["input_ids"]
        batch = input_ids.shape[0]
        masked = inputs["labels"] != -100
        example = masked.nonzero()[:, 0]
        nll = torch.zeros(batch, device=input_ids.device)
        counts = masked.sum(-1).float()
        if outputs.mlm_logits is not None and example.numel():
            token_nll = torch.nn.functional.cross_entropy(
                outputs.mlm_logits.float(), inputs["labels"][masked], reduction="none"
            )
            nll = nll.index_add(0, example, token_nll)
        urc_logits = outputs.urc_logits
        if urc_logits is None:  # MLM-only: a placeholder column, on the batch's device like the rest
            urc_logits = torch.zeros(batch, 1, device=input_ids.device)
        return outputs.loss.detach(), (urc_logits.float(), nll, counts), inputs["urc_labels"]


def _item(value: torch.Tensor | None) -> float:
    return 0.0 if value is None else value.detach().float().item()


def compute_post_training_metrics(prediction: EvalPrediction) -> dict[str, float]:
    """URC accuracy overall and per class, the same-session AUC and MLM perplexity over the held-out windows."""
    predictions, labels = PostTrainingPredictions(*prediction.predictions), prediction.label_ids
    urc_logits, nll, counts = predictions
    metrics: dict[str, float] = {}
    if len(labels):
        # accuracy a head stuck on its class prior gets: the majority class's share
        metrics["urc_prior"] = float(np.bincount(labels).max() / len(labels))
    if counts.sum() > 0:
        metrics["mlm_perplexity"] = float(math.exp(min(nll.sum() / counts.sum(), 50.0)))
    if urc_logits.shape[1] > 1:  # accuracy overall and per class, and the same-session AUC (ko_mrs.session)
        metrics.update(urc_metrics(urc_logits, labels))
    return metrics


def load_split_dialogues(
    train_files: list[str],
    validation_files: list[str],
    *,
    need_validation: bool,
    validation_ratio: float,
    split_seed: int,
    skip_short: bool,
):
    """Read train (and validation) dialogues; without validation files, hold out a split by id."""
    train, reports = read_dialogues(train_files, skip_short=skip_short)
    validation = None
    if validation_files:
        validation, more = read_dialogues(validation_files, skip_short=skip_short)
        reports += more
    elif need_validation:
        splits = split_by_id(train, split_seed, (1 - validation_ratio, validation_ratio, 0.0))
        train, validation = splits["train"], splits["validation"]
    return train, validation, reports


def probe_batch(collator: PostTrainingCollator, windows, size: int) -> dict[str, torch.Tensor]:
    """The collapse monitor's fixed pairs: the first ``size`` windows, unmasked, with fixed URC draws."""
    if size < 2:
        raise ValueError(f"probe_size must be at least 2 (a spread needs two examples), got {size}")
    probe_collator = dataclasses.replace(collator, mlm_probability=0.0, epoch=EVAL_EPOCH)
    return probe_collator(list(windows.select(range(min(size, len(windows))))))
