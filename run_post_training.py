"""BERT-FP fine-grained post-training (MLM + utterance relevance classification) on the Trainer.

Built like transformers' ``run_mlm.py``: dataclass arguments from a config file and/or the command
line, ``do_train``/``do_eval``, last-checkpoint detection and resume, metrics logged and saved.

    python run_post_training.py configs/post_training/tiny.yaml
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml \\
        run_post_training.py configs/post_training/klue-bert-base.yaml
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass, field

from transformers import AutoTokenizer, BertConfig, EvalPrediction, HfArgumentParser, set_seed

from data_collators import PostTrainingCollator
from ko_mrs.cli_errors import UsageError, cli_main
from ko_mrs.collapse_monitor import CollapseMonitor, warn_if_at_prior
from ko_mrs.dialogue_data import require_two_dialogues
from ko_mrs.head_warmup import HeadWarmupCallback, resolve_warmup_steps
from ko_mrs.hub import HubArguments, build_model_card, push_final
from ko_mrs.post_training import (
    EVAL_EPOCH,
    PostTrainingArguments,
    PostTrainingTrainer,
    compute_post_training_metrics,
    load_split_dialogues,
    probe_batch,
)
from ko_mrs.preprocessing import DEFAULT_MAX_LENGTH, DialoguePool, add_eot_token, build_windows, tokenize_dialogues
from ko_mrs.speakers import UtteranceFeatureArguments
from ko_mrs.training import (
    CollatorEpochCallback,
    apply_config_overrides,
    detect_last_checkpoint,
    parse_args,
    planned_steps,
    setup_logging,
    train_resuming,
)
from modeling_mrs import prepare_model_for_post_training

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="klue/bert-base", metadata={"help": "Pretrained BERT: a local path or a Hub id."}
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "Defaults to model_name_or_path."})
    num_urc_labels: int = field(
        default=3, metadata={"help": "3 = BERT-FP's URC; 2 = NSP-style (true next vs. another dialogue) ablation."}
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Model config values, e.g. 'hidden_dropout_prob=0,attention_probs_dropout_prob=0'."},
    )
    mlm_loss_weight: float = field(default=1.0, metadata={"help": "0 gives URC-only post-training."})
    urc_loss_weight: float = field(default=1.0, metadata={"help": "0 gives MLM-only post-training."})


@dataclass
class DataArguments:
    train_files: list[str] = field(default_factory=list, metadata={"help": "JSONL or benchmark .txt dialogue files."})
    validation_files: list[str] = field(
        default_factory=list, metadata={"help": "Held-out dialogues; else validation_ratio of train, split by id."}
    )
    validation_ratio: float = field(default=0.05)
    split_seed: int = field(default=0)
    window: int = field(default=3, metadata={"help": "Context utterances per window (the paper: 3; Douban: 2)."})
    max_seq_length: int = field(default=DEFAULT_MAX_LENGTH)
    mlm_probability: float = field(default=0.15)
    urc_probabilities: list[float] | None = field(
        default=None,
        metadata={
            "help": "P(other dialogue), P(same dialogue), P(true next); with 2 URC labels P(other dialogue), "
            "P(true next). Default: BERT-FP's 0.5 0.25 0.25, or 0.5 0.5 for 2 labels."
        },
    )
    whole_word_masking: bool = field(default=False, metadata={"help": "Mask whole eojeol (word) spans."})
    same_corpus_negatives: bool = field(default=True)
    skip_short: bool = field(default=False, metadata={"help": "Skip (and count) dialogues under 2 utterances."})
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)
    preprocessing_num_workers: int | None = field(default=None)


def run(argv: list[str] | None = None) -> dict[str, float]:
    """Parse arguments, train and/or evaluate; returns the metrics."""
    parser = HfArgumentParser(
        (ModelArguments, DataArguments, PostTrainingArguments, HubArguments, UtteranceFeatureArguments)
    )
    model_args, data_args, training_args, hub_args, feature_args = parse_args(parser, argv)
    setup_logging(training_args)
    if not data_args.train_files:
        raise UsageError("--train_files is required")
    set_seed(training_args.seed)

    tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_args.model_name_or_path)
    add_eot_token(tokenizer)
    config = BertConfig.from_pretrained(model_args.model_name_or_path)
    features = feature_args.resolve(config)
    features.add_tokens(tokenizer)  # before the model is built, so its embeddings grow to hold the markers
    features.to_config(config)
    with training_args.main_process_first(desc="reading and tokenising dialogues"):
        train, validation, reports = load_split_dialogues(
            data_args.train_files,
            data_args.validation_files,
            need_validation=training_args.do_eval,
            validation_ratio=data_args.validation_ratio,
            split_seed=data_args.split_seed,
            skip_short=data_args.skip_short,
        )
        for report in reports:
            logger.info("read %s", report)
        require_two_dialogues(train, data_args.train_files)
        if validation is not None:
            require_two_dialogues(validation, data_args.validation_files or data_args.train_files)
        train_tok = tokenize_dialogues(train, tokenizer, num_proc=data_args.preprocessing_num_workers)
        train_windows = build_windows(train_tok, window=data_args.window)
        eval_tok = eval_windows = None
        if validation is not None:
            eval_tok = tokenize_dialogues(validation, tokenizer, num_proc=data_args.preprocessing_num_workers)
            eval_windows = build_windows(eval_tok, window=data_args.window)
    if data_args.max_train_samples is not None:
        train_windows = train_windows.select(range(min(data_args.max_train_samples, len(train_windows))))
    if eval_windows is not None and data_args.max_eval_samples is not None:
        eval_windows = eval_windows.select(range(min(data_args.max_eval_samples, len(eval_windows))))
    logger.info("%d training windows, %s evaluation windows", len(train_windows), eval_windows and len(eval_windows))

    apply_config_overrides(config, model_args.config_overrides)
    model = prepare_model_for_post_training(
        model_args.model_name_or_path,
        tokenizer,
        config=config,
        num_urc_labels=model_args.num_urc_labels,
        mlm_loss_weight=model_args.mlm_loss_weight,
        urc_loss_weight=model_args.urc_loss_weight,
    )
    collator_settings = dict(
        tokenizer=tokenizer,
        max_length=data_args.max_seq_length,
        mlm_probability=data_args.mlm_probability,
        # None: the collator's default for num_urc_labels (data_collators.DEFAULT_URC_PROBABILITIES)
        urc_probabilities=tuple(data_args.urc_probabilities) if data_args.urc_probabilities else None,
        num_urc_labels=model_args.num_urc_labels,
        whole_word_masking=data_args.whole_word_masking,
        seed=training_args.seed,
        features=features,
    )
    train_collator = PostTrainingCollator(
        pool=DialoguePool(train_tok, same_corpus_negatives=data_args.same_corpus_negatives), **collator_settings
    )
    eval_collator = None
    if eval_tok is not None:
        eval_pool = DialoguePool(eval_tok, same_corpus_negatives=data_args.same_corpus_negatives)
        eval_collator = dataclasses.replace(train_collator, pool=eval_pool, epoch=EVAL_EPOCH)
    monitor = CollapseMonitor(
        probe_batch(eval_collator or train_collator, eval_windows or train_windows, training_args.probe_size),
        training_args.collapse_threshold,
    )
    monitor.start(model)
    warmup_steps = 0
    if training_args.do_train:
        warmup_steps = resolve_warmup_steps(
            training_args.head_warmup_steps, model.fresh_heads, planned_steps(training_args, len(train_windows))
        )
        logger.info("Fresh heads: %s; head warm-up: %d steps", ", ".join(model.fresh_heads) or "none", warmup_steps)

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        metrics = compute_post_training_metrics(prediction)
        warn_if_at_prior(metrics)
        return {**metrics, **monitor.report(trainer.model)}

    trainer = PostTrainingTrainer(
        model=model,
        args=training_args,
        train_dataset=train_windows if training_args.do_train else None,
        eval_dataset=eval_windows if training_args.do_eval else None,
        data_collator=train_collator,
        eval_collator=eval_collator,
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        callbacks=[CollatorEpochCallback(train_collator), HeadWarmupCallback(model, warmup_steps)],
        head_warmup_steps=warmup_steps,
        card_builder=lambda repo_id: build_model_card(
            stage="post-training",
            repo_id=repo_id,
            base_model=model_args.model_name_or_path,
            args=training_args,
            settings={
                "objective": model.objective,
                "window": data_args.window,
                "max_seq_length": data_args.max_seq_length,
                "mlm_probability": data_args.mlm_probability,
                "urc_probabilities": list(train_collator.urc_probabilities),
                "num_urc_labels": model_args.num_urc_labels,
                "whole_word_masking": data_args.whole_word_masking,
                "fresh_heads": ", ".join(model.fresh_heads) or "none",
                "head_warmup_steps": warmup_steps,
                "encoder_learning_rate": training_args.encoder_learning_rate or training_args.learning_rate,
            },
            hub_args=hub_args,
            health={"initial": monitor.initial, "final": monitor.latest, "metrics": metrics},
        ),
    )
    metrics: dict[str, float] = {}
    if training_args.do_train:
        result = train_resuming(trainer, detect_last_checkpoint(training_args, hub_args))
        trainer.save_model()
        result.metrics.update({f"train_{key}": value for key, value in monitor.report(model).items()})
        metrics.update(result.metrics)
        metrics["train_samples"] = len(train_windows)
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
    if training_args.do_eval and eval_windows is not None:
        eval_metrics = trainer.evaluate()
        eval_metrics["eval_samples"] = len(eval_windows)
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    trainer.create_model_card()  # the card beside the weights, pushed or not, with the final numbers
    if training_args.push_to_hub:
        push_final(trainer)
    return metrics


def main(argv: list[str] | None = None) -> int:
    return cli_main("run_post_training.py", run, argv)


if __name__ == "__main__":
    sys.exit(main())
