"""Checkpoints that survive ``kill -9``: written whole or not at all, and checked before any resume.

Trainer writes ``checkpoint-N/`` file by file, so a crash mid-save leaves a folder that looks like the
latest checkpoint and breaks every later resume. Here:

* :class:`CrashSafeCheckpointMixin` writes each checkpoint into ``_tmp-checkpoint-N/``, syncs it, and renames
  it to ``checkpoint-N`` only when whole (the Hub push and the rotation of old checkpoints come after);
* :func:`find_resumable_checkpoint` resumes from the latest *complete* checkpoint and sets incomplete ones
  (and interrupted saves) aside as ``_incomplete-...`` folders, renamed rather than deleted, one log line each.

Folders starting with ``_`` are never uploaded by Trainer's pushes, and neither name matches Trainer's
``checkpoint-*`` rotation, so set-aside folders are neither pushed nor silently deleted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
import time
import zipfile
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from ko_mrs.cli_errors import UsageError

logger = logging.getLogger(__name__)

STAGING_PREFIX = f"_tmp-{PREFIX_CHECKPOINT_DIR}-"
ASIDE_PREFIX = "_incomplete-"
CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
TRAINER_STATE = "trainer_state.json"


def _torch_file_problem(path: Path) -> str | None:
    """torch.save writes a zip archive whose directory sits at the end: a truncated file has none."""
    if not path.is_file():
        return f"no {path.name}"
    if not zipfile.is_zipfile(path):
        return f"{path.name} is truncated or not a torch file"
    return None


def _safetensors_problem(path: Path) -> str | None:
    """The header names every tensor's byte range, so a truncated file is one shorter than they need."""
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            if header_size > size:
                return f"{path.name} is truncated"
            header = json.loads(handle.read(header_size))
        end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError):
        return f"{path.name} has no valid safetensors header"
    if size < 8 + header_size + end:
        return f"{path.name} is truncated ({size} of {8 + header_size + end} bytes)"
    return None


def _weights_problem(folder: Path) -> str | None:
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text("utf-8"))["weight_map"].values()))
            except (ValueError, KeyError, AttributeError):
                return f"{index_name} is not valid JSON"
            for shard in shards:
                if not (folder / shard).is_file():
                    return f"no {shard} (listed in {index_name})"
                problem = (_safetensors_problem if shard.endswith(".safetensors") else _torch_file_problem)(
                    folder / shard
                )
                if problem:
                    return problem
            return None
    if (folder / "model.safetensors").is_file():
        return _safetensors_problem(folder / "model.safetensors")
    if (folder / "pytorch_model.bin").is_file():
        return _torch_file_problem(folder / "pytorch_model.bin")
    return "no model weights"


def checkpoint_problem(folder: str | Path) -> str | None:
    """Why ``folder`` cannot be resumed from (weights, optimizer, scheduler, RNG, trainer state), or None.

    FSDP and DeepSpeed write their own layouts; for those only the trainer state and RNG files are checked.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return "not a folder"
    state = folder / TRAINER_STATE
    if not state.is_file():
        return f"no {TRAINER_STATE}"
    try:
        step = json.loads(state.read_text("utf-8"))["global_step"]
    except (ValueError, KeyError, TypeError):
        return f"{TRAINER_STATE} is not valid trainer state JSON"
    if not isinstance(step, int):
        return f"{TRAINER_STATE} has no global_step"
    rng_files = sorted(folder.glob("rng_state*.pth"))
    if not rng_files:
        return "no rng_state.pth"
    for path in rng_files:
        if problem := _torch_file_problem(path):
            return problem
    if (folder / "latest").is_file() or any(folder.glob("pytorch_model_fsdp*")):
        return None
    for name in ("optimizer.pt", "scheduler.pt"):
        if problem := _torch_file_problem(folder / name):
            return problem
    return _weights_problem(folder)


def _set_aside(folder: Path, reason: str) -> Path:
    aside = folder.with_name(f"{ASIDE_PREFIX}{folder.name.lstrip('_')}-{time.strftime('%Y%m%dT%H%M%S')}")
    suffix = 0
    while aside.exists():
        suffix += 1
        aside = aside.with_name(f"{aside.name.rsplit('.', 1)[0]}.{suffix}")
    folder.rename(aside)
    logger.warning("resume skipped an incomplete checkpoint: %s (%s); kept as %s", folder, reason, aside.name)
    return aside


def find_resumable_checkpoint(output_dir: str | Path, *, set_aside: bool = True) -> str | None:
    """The latest complete ``checkpoint-N`` of ``output_dir``; incomplete ones and interrupted saves are set aside.

    Older incomplete ones (a crash while rotation deleted them) are set aside too, so that rotation never
    counts them as checkpoints. ``set_aside=False`` only skips them: for processes that must not rename
    what the saving process renames.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    if set_aside:
        for staged in sorted(output_dir.glob(f"{STAGING_PREFIX}*")):
            _set_aside(staged, "its save was interrupted")
    numbered = [(int(m.group(1)), p) for p in output_dir.iterdir() if (m := CHECKPOINT_RE.match(p.name)) and p.is_dir()]
    latest = None
    for _, folder in sorted(numbered, reverse=True):
        problem = checkpoint_problem(folder)
        if problem is None:
            latest = latest or str(folder)
        elif set_aside:
            _set_aside(folder, problem)
    return latest


def require_complete(folder: str | Path, what: str) -> str:
    """``folder`` if it is a complete checkpoint, else a :class:`UsageError` saying what is missing."""
    problem = checkpoint_problem(folder)
    if problem is not None:
        raise UsageError(f"{what} {folder} is not a complete checkpoint: {problem}")
    return str(folder)


def _sync_tree(folder: Path) -> None:
    """fsync every file and folder, so that a power cut after the rename cannot leave empty files behind it."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    for path in [*sorted(p for p in folder.rglob("*") if p.is_dir()), folder, folder.parent]:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _move_into_place(staged: Path, final: Path) -> None:
    old = None
    if final.exists():  # the same step saved again (a resumed run): swap, then drop the old copy
        old = final.with_name(f"_replaced-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    staged.rename(final)
    if old is not None:
        shutil.rmtree(old)


class CrashSafeCheckpointMixin:
    """Trainer mixin: ``checkpoint-N`` appears only when whole (written as ``_tmp-checkpoint-N``, then renamed).

    Trainer's own ``_save_checkpoint`` does the writing, into the staging folder; the Hub push and the
    rotation of old checkpoints are deferred until the rename, so they see the final folder. A run resumed
    from its last step (killed after the final save) trains no extra step: Trainer checks ``max_steps``
    only after a step, so it would train step ``max_steps + 1`` and end elsewhere than the uninterrupted run.
    """

    _staging_root: str | None = None

    def _run_epoch(self, *args, **kwargs):
        if self.state.max_steps > 0 and self.state.global_step >= self.state.max_steps:
            self.control.should_training_stop = True
            return None
        return super()._run_epoch(*args, **kwargs)

    def _get_output_dir(self, trial) -> str:
        return self._staging_root or super()._get_output_dir(trial)

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        if self._staging_root is None:  # pushed after the rename instead
            super()._push_from_checkpoint(checkpoint_folder)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = Path(super()._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging_root = run_dir / f"_tmp-{name}"
        staged, final = staging_root / name, run_dir / name
        self._staging_root = str(staging_root)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging_root = None
        self.accelerator.wait_for_everyone()  # every process has written its RNG (and sharded) files
        if self.args.should_save:
            if self.state.best_model_checkpoint and Path(self.state.best_model_checkpoint) == staged:
                self.state.best_model_checkpoint = str(final)
                self.state.save_to_json(str(staged / TRAINER_STATE))
            _sync_tree(staged)
            _move_into_place(staged, final)
            staging_root.rmdir()
        self.accelerator.wait_for_everyone()
        if self.args.push_to_hub:
            self._push_from_checkpoint(str(final))
        if self.args.should_save:
            rotate_checkpoints(
                output_dir=str(run_dir),
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )
