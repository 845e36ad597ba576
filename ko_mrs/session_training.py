"""``run_fine_tuning.py --task session``: train the URC head alone, as a session classifier.

For users who want a better session model than post-training leaves: the post-training class
(:class:`modeling_mrs.BertForFineGrainedPostTraining`) with the MLM loss off (``mlm_loss_weight=0``), trained on
URC draws over every window (:class:`data_collators.PostTrainingCollator` without masking). A post-trained
checkpoint keeps its URC head and number of classes; a plain BERT gets a fresh 3-class head. The result loads in
:class:`ko_mrs.session.SessionClassifier`; evaluation reports URC accuracy per class and the same-session AUC.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import AutoTokenizer, BertConfig, EvalPrediction

from data_collators import PostTrainingCollator
from ko_mrs.cli_errors import UsageError
from ko_mrs.dialogue_data import read_dialogues, require_two_dialogues
from ko_mrs.hub import build_model_card, push_final
from ko_mrs.post_training import EVAL_EPOCH
from ko_mrs.preprocessing import DialoguePool, add_eot_token, build_windows, tokenize_dialogues
from ko_mrs.session import DEFAULT_CONTEXT_TURNS, urc_metrics
from ko_mrs.training import (
    CollatorEpochCallback,
    MrsTrainer,
    apply_config_overrides,
    detect_last_checkpoint,
    train_resuming,
)
from modeling_mrs import prepare_model_for_post_training

logger = logging.getLogger(__name__)

__all__ = ["SessionTrainer", "compute_session_metrics", "train_session"]

SESSION_METRIC = "same_session_auc"


class SessionTrainer(MrsTrainer):
    """Trains on the model's own (URC) loss; evaluation gathers the URC logits against their labels."""

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            outputs = model(**inputs)
        return outputs.loss.detach(), outputs.urc_logits.float(), inputs["urc_labels"]


def compute_session_metrics(prediction: EvalPrediction) -> dict[str, float]:
    return urc_metrics(prediction.predictions, prediction.label_ids)


def train_session(model_args: Any, data_args: Any, training_args: Any, hub_args: Any) -> dict[str, float]:
    """Train / evaluate a session classifier with ``run_fine_tuning.py``'s arguments; returns the metrics.

    Uses ``train_files``, ``validation_files`` (held-out dialogues, for ``--do_eval``), ``max_turns`` (context
    turns per window, default post-training's 3), ``max_seq_length`` and ``same_corpus_negatives``.
    """
    if not data_args.train_files and training_args.do_train:
        raise UsageError("--do_train needs --train_files")
    if training_args.do_eval and not data_args.validation_files:
        raise UsageError("--task session --do_eval needs --validation_files (held-out dialogues)")
    if training_args.do_predict:
        raise UsageError("--task session has no --do_predict: evaluate held-out dialogues with --do_eval")
    if training_args.metric_for_best_model == "r10@1":  # the response-selection default means nothing here
        training_args.metric_for_best_model = SESSION_METRIC
    window = data_args.max_turns or DEFAULT_CONTEXT_TURNS

    tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_args.model_name_or_path)
    add_eot_token(tokenizer)
    config = BertConfig.from_pretrained(model_args.model_name_or_path)
    apply_config_overrides(config, model_args.config_overrides)
    model = prepare_model_for_post_training(
        model_args.model_name_or_path, tokenizer, config=config, mlm_loss_weight=0.0, urc_loss_weight=1.0
    )
    model.config.mrs_max_length = data_args.max_seq_length
    model.config.mrs_max_turns = window

    def windows_of(files: list[str]):
        with training_args.main_process_first(desc="reading and tokenising dialogues"):
            dialogues, reports = read_dialogues(files, skip_short=data_args.skip_short)
            for report in reports:
                logger.info("read %s", report)
            require_two_dialogues(dialogues, files)
            tokenized = tokenize_dialogues(dialogues, tokenizer)
            pool = DialoguePool(tokenized, same_corpus_negatives=data_args.same_corpus_negatives)
            return pool, build_windows(tokenized, window=window)

    collator_settings = dict(
        tokenizer=tokenizer,
        max_length=data_args.max_seq_length,
        mlm_probability=0.0,
        num_urc_labels=model.config.num_urc_labels,
        seed=training_args.seed,
    )
    train_windows = train_collator = eval_windows = eval_collator = None
    if training_args.do_train:
        pool, train_windows = windows_of(data_args.train_files)
        if data_args.max_train_samples is not None:
            train_windows = train_windows.select(range(min(data_args.max_train_samples, len(train_windows))))
        train_collator = PostTrainingCollator(pool=pool, **collator_settings)
    if training_args.do_eval:
        pool, eval_windows = windows_of(data_args.validation_files)
        eval_collator = PostTrainingCollator(pool=pool, epoch=EVAL_EPOCH, **collator_settings)
    logger.info(
        "session task: %s training windows, %s evaluation windows",
        train_windows and len(train_windows),
        eval_windows and len(eval_windows),
    )

    metrics: dict[str, float] = {}
    trainer = SessionTrainer(
        model=model,
        args=training_args,
        train_dataset=train_windows,
        eval_dataset=eval_windows,
        data_collator=train_collator or eval_collator,
        eval_collator=eval_collator,
        processing_class=tokenizer,
        compute_metrics=compute_session_metrics,
        callbacks=[CollatorEpochCallback(train_collator)] if train_collator else [],
        card_builder=lambda repo_id: build_model_card(
            stage="session",
            repo_id=repo_id,
            base_model=model_args.model_name_or_path,
            args=training_args,
            settings={
                "task": "session",
                "window": window,
                "max_seq_length": data_args.max_seq_length,
                "num_urc_labels": model.config.num_urc_labels,
                "urc_probabilities": list((train_collator or eval_collator).urc_probabilities),
            },
            hub_args=hub_args,
            health={"metrics": metrics},
        ),
    )
    if training_args.do_train:
        result = train_resuming(trainer, detect_last_checkpoint(training_args, hub_args))
        trainer.save_model()
        result.metrics["train_samples"] = len(train_windows)
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
        metrics.update(result.metrics)
    if training_args.do_eval:
        eval_metrics = trainer.evaluate()
        eval_metrics["eval_samples"] = len(eval_windows)
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    trainer.create_model_card()
    if training_args.push_to_hub:
        push_final(trainer)
    return metrics
