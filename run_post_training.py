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
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
import transformers
from transformers import AutoTokenizer, EvalPrediction, HfArgumentParser, Trainer, TrainingArguments, set_seed

from config_args import parse_config_and_args, parse_overrides
from data_collators import CollatorEpochCallback, PoolCollatorTrainerMixin, PostTrainingCollator
from ko_mrs.checkpoints import CrashSafeCheckpointMixin, find_resumable_checkpoint, require_complete
from ko_mrs.cli_errors import UsageError, cli_main
from ko_mrs.collapse_monitor import DEFAULT_THRESHOLD, CollapseMonitor, warn_if_at_prior
from ko_mrs.dialogue_data import ReadReport, read_dialogues, require_two_dialogues, split_by_id
from ko_mrs.head_warmup import HeadWarmupCallback, parameter_groups, resolve_warmup_steps, warmup_then_linear_decay
from ko_mrs.hub import (
    HubArguments,
    HubPushMixin,
    TokenFreeArguments,
    build_model_card,
    download_last_checkpoint,
    push_final,
)
from ko_mrs.preprocessing import DialoguePool, add_eot_token, build_windows, tokenize_dialogues
from modeling_mrs import prepare_model_for_post_training

logger = logging.getLogger(__name__)

# Eval draws use a fixed "epoch" so that every evaluation scores the same candidates and masks.
EVAL_EPOCH = 1_000_000


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
    max_seq_length: int = field(default=240)
    mlm_probability: float = field(default=0.15)
    urc_probabilities: list[float] = field(
        default_factory=lambda: [0.5, 0.25, 0.25],
        metadata={"help": "P(other dialogue), P(same dialogue), P(true next); NSP mode uses the first and last."},
    )
    whole_word_masking: bool = field(default=False, metadata={"help": "Mask whole eojeol (word) spans."})
    same_corpus_negatives: bool = field(default=True)
    skip_short: bool = field(default=False, metadata={"help": "Skip (and count) dialogues under 2 utterances."})
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)
    preprocessing_num_workers: int | None = field(default=None)


@dataclass
class MrsTrainingArguments(TokenFreeArguments, TrainingArguments):
    """Trainer arguments with the defaults both ko-mrs stages need."""

    # Our collators read index columns that the model's forward does not take.
    remove_unused_columns: bool = field(default=False)
    # transformers 5.x scales the loss by the world size for models whose forward takes **kwargs;
    # keep the plain per-device mean so that N processes train like one.
    average_tokens_across_devices: bool = field(default=False)

    def __post_init__(self) -> None:
        # Without use_cpu, accelerate treats torchrun/accelerate-launched processes on a machine with no
        # GPU as N independent single-process runs. Ask for CPU DDP (gloo) explicitly.
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
            self.use_cpu = True
        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # nothing to pin to; silences a warning per dataloader
        super().__post_init__()


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


class PostTrainingTrainer(HubPushMixin, CrashSafeCheckpointMixin, PoolCollatorTrainerMixin, Trainer):
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
        """Per-example URC logits and MLM loss sums, so evaluation gathers cleanly across processes."""
        with torch.no_grad():
            outputs = model(**inputs)
        batch = inputs["input_ids"].shape[0]
        masked = inputs["labels"] != -100
        example = masked.nonzero()[:, 0]
        nll = torch.zeros(batch, device=example.device)
        counts = masked.sum(-1).float()
        if outputs.mlm_logits is not None and example.numel():
            token_nll = torch.nn.functional.cross_entropy(
                outputs.mlm_logits.float(), inputs["labels"][masked], reduction="none"
            )
            nll = nll.index_add(0, example, token_nll)
        urc_logits = outputs.urc_logits if outputs.urc_logits is not None else torch.zeros(batch, 1)
        logits = torch.cat([urc_logits.float(), nll[:, None], counts[:, None]], dim=-1)
        return outputs.loss.detach(), logits, inputs["urc_labels"]


def _item(value: torch.Tensor | None) -> float:
    return 0.0 if value is None else value.detach().float().item()


def compute_post_training_metrics(prediction: EvalPrediction) -> dict[str, float]:
    """URC accuracy overall and per class, and MLM perplexity over the held-out windows."""
    logits, labels = prediction.predictions, prediction.label_ids
    urc_logits, nll, counts = logits[:, :-2], logits[:, -2], logits[:, -1]
    metrics: dict[str, float] = {}
    if len(labels):
        # accuracy a head stuck on its class prior gets: the majority class's share
        metrics["urc_prior"] = float(np.bincount(labels).max() / len(labels))
    if counts.sum() > 0:
        metrics["mlm_perplexity"] = float(math.exp(min(nll.sum() / counts.sum(), 50.0)))
    if urc_logits.shape[1] > 1:
        predicted = urc_logits.argmax(-1)
        metrics["urc_accuracy"] = float((predicted == labels).mean())
        for label in range(urc_logits.shape[1]):
            chosen = labels == label
            if chosen.any():
                metrics[f"urc_accuracy_class_{label}"] = float((predicted[chosen] == label).mean())
    return metrics


def load_split_dialogues(data_args: DataArguments, *, need_validation: bool):
    """Read train (and validation) dialogues; without validation files, hold out a split by id."""
    train, reports = read_dialogues(data_args.train_files, skip_short=data_args.skip_short)
    validation = None
    if data_args.validation_files:
        validation, more = read_dialogues(data_args.validation_files, skip_short=data_args.skip_short)
        reports += more
    elif need_validation:
        splits = split_by_id(
            train, data_args.split_seed, (1 - data_args.validation_ratio, data_args.validation_ratio, 0.0)
        )
        train, validation = splits["train"], splits["validation"]
    return train, validation, reports


def _log_reports(reports: list[ReadReport]) -> None:
    for report in reports:
        logger.info("read %s", report)


def probe_batch(collator: PostTrainingCollator, windows, size: int) -> dict[str, torch.Tensor]:
    """The collapse monitor's fixed pairs: the first ``size`` windows, unmasked, with fixed URC draws."""
    if size < 2:
        raise ValueError(f"probe_size must be at least 2 (a spread needs two examples), got {size}")
    probe_collator = dataclasses.replace(collator, mlm_probability=0.0, epoch=EVAL_EPOCH)
    return probe_collator(list(windows.select(range(min(size, len(windows))))))


def planned_steps(args: TrainingArguments, num_examples: int) -> int:
    """The optimizer steps a run will take, as Trainer counts them (for defaults that are a share of the run)."""
    if args.max_steps > 0:
        return args.max_steps
    batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * max(args.world_size, 1)
    return max(1, math.ceil(math.ceil(num_examples / batch) * args.num_train_epochs))


def detect_last_checkpoint(training_args: TrainingArguments, hub_args: HubArguments) -> str | None:
    """The checkpoint to resume from: a named one, the Hub repo's last-checkpoint/, or the latest local one."""
    if training_args.resume_from_checkpoint is not None:
        return require_complete(training_args.resume_from_checkpoint, "--resume_from_checkpoint")
    if hub_args.resume_from_hub:
        # "_*" folders are never uploaded by Trainer, so the download does not travel back to the Hub
        with training_args.main_process_first(desc="downloading last-checkpoint/ from the Hub"):
            local = download_last_checkpoint(
                hub_args.resume_from_hub, Path(training_args.output_dir) / "_hub_resume", token=training_args.hub_token
            )
        logger.info("Resuming from %s/last-checkpoint (downloaded to %s)", hub_args.resume_from_hub, local)
        return local
    # the saving process sets incomplete checkpoints aside first; the others only skip them
    with training_args.main_process_first(local=training_args.save_on_each_node, desc="finding the last checkpoint"):
        last = find_resumable_checkpoint(training_args.output_dir, set_aside=training_args.should_save)
    if last is not None:
        logger.info("Resuming from the last checkpoint %s", last)
    return last


def setup_logging(training_args: TrainingArguments) -> None:
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = training_args.get_process_log_level()
    transformers.utils.logging.set_verbosity(level)
    # our modules' loggers, whichever of them runs as __main__ (the root logger would also let httpx etc. through)
    for name in ("__main__", __name__, "run_fine_tuning", "dialogue_data", "hub", "checkpoints", "negatives"):
        logging.getLogger(name).setLevel(level)
    if training_args.disable_tqdm:  # also the bars Trainer does not control: datasets' and loading weights
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()


def run(argv: list[str] | None = None) -> dict[str, float]:
    """Parse arguments, train and/or evaluate; returns the metrics."""
    parser = HfArgumentParser((ModelArguments, DataArguments, PostTrainingArguments, HubArguments))
    model_args, data_args, training_args, hub_args = parse_config_and_args(parser, argv)
    setup_logging(training_args)
    if not data_args.train_files:
        raise UsageError("--train_files is required")
    set_seed(training_args.seed)

    tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_args.model_name_or_path)
    add_eot_token(tokenizer)
    with training_args.main_process_first(desc="reading and tokenising dialogues"):
        train, validation, reports = load_split_dialogues(data_args, need_validation=training_args.do_eval)
        _log_reports(reports)
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

    model = prepare_model_for_post_training(
        model_args.model_name_or_path,
        tokenizer,
        num_urc_labels=model_args.num_urc_labels,
        mlm_loss_weight=model_args.mlm_loss_weight,
        urc_loss_weight=model_args.urc_loss_weight,
        **parse_overrides(model_args.config_overrides),
    )
    collator_settings = dict(
        tokenizer=tokenizer,
        max_length=data_args.max_seq_length,
        mlm_probability=data_args.mlm_probability,
        urc_probabilities=tuple(data_args.urc_probabilities),
        num_urc_labels=model_args.num_urc_labels,
        whole_word_masking=data_args.whole_word_masking,
        seed=training_args.seed,
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
    )
    trainer.card_builder = lambda: build_model_card(
        stage="post-training",
        repo_id=trainer.card_repo_id,
        base_model=model_args.model_name_or_path,
        args=training_args,
        settings={
            "window": data_args.window,
            "max_seq_length": data_args.max_seq_length,
            "mlm_probability": data_args.mlm_probability,
            "urc_probabilities": data_args.urc_probabilities,
            "num_urc_labels": model_args.num_urc_labels,
            "whole_word_masking": data_args.whole_word_masking,
            "fresh_heads": ", ".join(model.fresh_heads) or "none",
            "head_warmup_steps": warmup_steps,
            "encoder_learning_rate": training_args.encoder_learning_rate or training_args.learning_rate,
        },
        hub_args=hub_args,
        health={"initial": monitor.initial, "final": monitor.latest, "metrics": metrics},
    )
    metrics: dict[str, float] = {}
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=detect_last_checkpoint(training_args, hub_args))
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
