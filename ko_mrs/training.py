"""What every run script shares: arguments from a config file and the command line, the training arguments,
logging, checkpoint detection, and the Trainer base with ko-mrs's mixins and callbacks.

The run scripts (``run_post_training.py``, ``run_fine_tuning.py``) import this module; nothing here imports them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch
import transformers
import yaml
from transformers import (
    EarlyStoppingCallback,
    HfArgumentParser,
    PretrainedConfig,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer_utils import TrainOutput

from ko_mrs.checkpoints import CrashSafeCheckpointMixin, find_resumable_checkpoint, require_complete
from ko_mrs.cli_errors import EXIT_USAGE, UsageError
from ko_mrs.hub import HubArguments, HubPushMixin, TokenFreeArguments, download_last_checkpoint

logger = logging.getLogger(__name__)

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def parse_args(parser: HfArgumentParser, argv: list[str] | None = None) -> tuple:
    """The parser's dataclasses from an optional leading config file (YAML or JSON), the command line on top.

    ``run_post_training.py configs/post_training/tiny.yaml --max_steps 10``: the file's values become the
    parser's defaults, so the command line wins and each value is converted and checked as on the command line.
    Errors are one line: argparse's own without its 150-line usage, and the ValueErrors of an unknown argument
    or of TrainingArguments' checks as a :class:`UsageError`.
    """
    parser.error = lambda message: parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message} (see --help)\n")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(CONFIG_SUFFIXES) and not argv[0].startswith("-"):
        path = Path(argv.pop(0))
        config = {key: value for key, value in read_config(path).items() if value is not None}
        fields = {f.name: f for dtype in parser.dataclass_types for f in dataclasses.fields(dtype) if f.init}
        unknown = sorted(set(config) - set(fields))
        if unknown:
            raise UsageError(f"{path}: unknown arguments {unknown} (see --help)")
        for key, value in config.items():
            choices = fields[key].metadata.get("choices")
            if choices and value not in choices:
                raise UsageError(f"{path}: {key}: invalid choice {value!r} (choose from {', '.join(choices)})")
        parser.set_defaults(**config)
    try:
        return parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    except ValueError as err:
        raise UsageError(" ".join(str(err).split())) from None


def read_config(path: Path) -> dict[str, Any]:
    """A YAML or JSON mapping of argument names to values; a file that is neither is a one-line UsageError."""
    try:
        text = path.read_text(encoding="utf-8-sig")
        config = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as err:
        reason = " ".join(str(err).split())
        raise UsageError(f"{path}: not a valid {path.suffix[1:].upper()} config ({reason})") from None
    if not isinstance(config, dict):
        raise UsageError(f"{path}: the config must be a mapping of argument names to values")
    return config


def apply_config_overrides(config: PretrainedConfig, overrides: str | None) -> PretrainedConfig:
    """``--config_overrides "hidden_dropout_prob=0,attention_probs_dropout_prob=0"`` on a loaded model config."""
    if overrides:
        try:
            config.update_from_string(overrides)
        except ValueError as err:
            raise UsageError(f"--config_overrides: {' '.join(str(err).split())}") from None
    return config


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


def setup_logging(training_args: TrainingArguments) -> None:
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = training_args.get_process_log_level()
    transformers.utils.logging.set_verbosity(level)
    # ours only, whichever script runs as __main__ (the root logger would also let httpx etc. through)
    for name in ("__main__", "run_post_training", "run_fine_tuning", "run_distillation", "ko_mrs"):
        logging.getLogger(name).setLevel(level)
    if training_args.disable_tqdm:  # also the bars Trainer does not control: datasets' and loading weights
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()


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


def train_resuming(trainer: Trainer, checkpoint: str | None) -> TrainOutput:
    """``trainer.train`` from ``checkpoint``; a checkpoint of another model (say, a rebuilt vocabulary) is one line.

    Without this, resuming from weights of another shape ends in ``load_state_dict``'s multi-line traceback.
    """
    try:
        return trainer.train(resume_from_checkpoint=checkpoint)
    except RuntimeError as error:
        if checkpoint is None or "Error(s) in loading state_dict" not in str(error):
            raise
        detail = next((line.strip() for line in str(error).splitlines()[1:] if line.strip()), "")
        raise UsageError(
            f"{checkpoint}: this checkpoint does not fit the model being trained ({detail}); "
            "move it away or choose another --output_dir"
        ) from error


def early_stopping(patience: int | None) -> list[TrainerCallback]:
    """The callbacks for ``--early_stopping_patience``: none without it (it needs ``load_best_model_at_end``)."""
    return [] if patience is None else [EarlyStoppingCallback(early_stopping_patience=patience)]


def planned_steps(args: TrainingArguments, num_examples: int) -> int:
    """The optimizer steps a run will take, as Trainer counts them (for defaults that are a share of the run)."""
    if args.max_steps > 0:
        return args.max_steps
    batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * max(args.world_size, 1)
    return max(1, math.ceil(math.ceil(num_examples / batch) * args.num_train_epochs))


class CollatorEpochCallback(TrainerCallback):
    """Tell a collator with an ``epoch`` (``PostTrainingCollator``) the epoch, so its draws are fresh every epoch.

    ``on_epoch_begin`` runs before the epoch's dataloader iterator (and its worker processes) is
    created, so workers see the new epoch too, unless ``dataloader_persistent_workers`` keeps old ones.
    On a mid-epoch resume ``state.epoch`` is fractional and ``int`` gives the epoch being resumed.
    """

    def __init__(self, collator: Any) -> None:
        self.collator = collator

    def on_epoch_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        self.collator.epoch = int(state.epoch or 0)


class PoolCollatorTrainerMixin:
    """Trainer mixin: evaluation and test rows index pools of their own, so they need their own collators.

    ``eval_collator`` serves evaluation (during and after training), ``test_collator`` serves
    ``predict``; either falls back to the training collator.
    """

    def __init__(self, *args, eval_collator=None, test_collator=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.eval_collator = eval_collator
        self.test_collator = test_collator

    def _with_collator(self, collator, make, *args):
        if collator is None:
            return make(*args)
        train_collator, self.data_collator = self.data_collator, collator
        try:
            return make(*args)
        finally:
            self.data_collator = train_collator

    def get_eval_dataloader(self, eval_dataset=None):
        return self._with_collator(self.eval_collator, super().get_eval_dataloader, eval_dataset)

    def get_test_dataloader(self, test_dataset):
        return self._with_collator(self.test_collator, super().get_test_dataloader, test_dataset)


class MrsTrainer(HubPushMixin, CrashSafeCheckpointMixin, PoolCollatorTrainerMixin, Trainer):
    """The Trainer both stages build on: the model card and reported pushes, crash-safe checkpoints, and
    evaluation/test collators of their own."""
