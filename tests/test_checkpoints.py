"""Crash-safe checkpoints (issue 9): a partial checkpoint is never resumed from, and a killed run always resumes.

Why: ``kill -9`` during a save used to leave a ``checkpoint-N`` that every later run tried, and failed, to
load, until a person deleted it. Each damage below is one the issue saw after real kills (an empty folder,
only ``modeling_mrs.py``, no or an empty ``trainer_state.json``) or that a kill mid-write leaves (truncated
weights or optimizer). The last test kills real runs with SIGKILL, one of them inside a save.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT

import run_post_training
from ko_mrs.checkpoints import ASIDE_PREFIX, STAGING_PREFIX, checkpoint_problem, find_resumable_checkpoint
from ko_mrs.cli_errors import UsageError

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_crash_resume  # noqa: E402


def post_args(setup: dict[str, Path], output_dir: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path", str(setup["model"]), "--train_files", str(setup["train"]),
        "--output_dir", str(output_dir), "--max_seq_length", "64", "--per_device_train_batch_size", "8",
        "--learning_rate", "1e-3", "--report_to", "none", "--disable_tqdm", "true", "--seed", "7",
        "--do_train", "--save_steps", "2", "--logging_steps", "1", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tiny_setup: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-step run with checkpoints at steps 2 and 4, saved through the atomic path."""
    out = tmp_path_factory.mktemp("ckpt") / "run"
    run_post_training.run(post_args(tiny_setup, out, "--max_steps", "4"))
    return out


def truncate(name: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        path = folder / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return damage


def remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def empty_folder(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.mkdir()


def only_remote_code(folder: Path) -> None:
    for path in folder.iterdir():
        if path.name != "modeling_mrs.py":
            path.unlink()


DAMAGES = {
    "empty folder": empty_folder,
    "only modeling_mrs.py": only_remote_code,
    "no trainer_state.json": remove("trainer_state.json"),
    "empty trainer_state.json": lambda folder: (folder / "trainer_state.json").write_text(""),
    "truncated model.safetensors": truncate("model.safetensors"),
    "truncated optimizer.pt": truncate("optimizer.pt"),
    "no scheduler.pt": remove("scheduler.pt"),
    "no rng_state.pth": remove("rng_state.pth"),
}


def test_finished_run_left_whole_checkpoints_and_no_staging(finished_run: Path) -> None:
    assert sorted(p.name for p in finished_run.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert not list(finished_run.glob(f"{STAGING_PREFIX}*"))
    for name in ("checkpoint-2", "checkpoint-4"):
        assert checkpoint_problem(finished_run / name) is None
    assert json.loads((finished_run / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_incomplete_checkpoint_is_set_aside_not_loaded(
    damage: str, finished_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    DAMAGES[damage](out / "checkpoint-4")
    kept = sorted(p.name for p in (out / "checkpoint-4").iterdir())
    assert checkpoint_problem(out / "checkpoint-4") is not None
    with caplog.at_level(logging.WARNING, logger="ko_mrs.checkpoints"):
        assert find_resumable_checkpoint(out) == str(out / "checkpoint-2")
    (aside,) = out.glob(f"{ASIDE_PREFIX}checkpoint-4-*")
    assert sorted(p.name for p in aside.iterdir()) == kept  # renamed, nothing deleted
    assert not (out / "checkpoint-4").exists()
    (record,) = [r for r in caplog.records if r.name == "ko_mrs.checkpoints"]
    assert "resume skipped an incomplete checkpoint" in record.getMessage() and "\n" not in record.getMessage()


def test_interrupted_save_is_set_aside(finished_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    (out / "checkpoint-4").rename(out / f"{STAGING_PREFIX}6")  # what a kill during the save of step 6 leaves
    assert find_resumable_checkpoint(out) == str(out / "checkpoint-2")
    assert len(list(out.glob(f"{ASIDE_PREFIX}tmp-checkpoint-6-*"))) == 1
    assert find_resumable_checkpoint(tmp_path / "nothing-here") is None


def test_rerun_resumes_past_a_damaged_checkpoint(
    finished_run: Path, tiny_setup: dict[str, Path], tmp_path: Path
) -> None:
    """The issue's failure: a rerun of the same command now resumes from checkpoint-2 and finishes."""
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    (out / "checkpoint-4" / "trainer_state.json").write_text("")
    (out / "trainer_state.json").unlink()
    run_post_training.run(post_args(tiny_setup, out, "--max_steps", "4"))
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert checkpoint_problem(out / "checkpoint-4") is None
    reference = json.loads((finished_run / "trainer_state.json").read_text())["log_history"]
    assert [e["loss"] for e in state["log_history"] if e.get("step") in (3, 4) and "loss" in e] == [
        e["loss"] for e in reference if e.get("step") in (3, 4) and "loss" in e
    ]


def test_rerun_of_a_finished_run_trains_no_extra_step(
    finished_run: Path, tiny_setup: dict[str, Path], tmp_path: Path
) -> None:
    """Killed after its last save, a run resumes at max_steps; Trainer alone would then train step max_steps + 1."""
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    run_post_training.run(post_args(tiny_setup, out, "--max_steps", "4"))
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and max(e["step"] for e in state["log_history"]) == 4
    assert not (out / "checkpoint-5").exists()


def test_named_incomplete_checkpoint_is_a_usage_error(
    finished_run: Path, tiny_setup: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "checkpoint-4"
    shutil.copytree(finished_run / "checkpoint-4", broken)
    (broken / "optimizer.pt").unlink()
    args = post_args(tiny_setup, tmp_path / "run", "--max_steps", "4", "--resume_from_checkpoint", str(broken))
    with pytest.raises(UsageError, match=rf"--resume_from_checkpoint {broken} is not a complete checkpoint: no optim"):
        run_post_training.run(args)


def test_sigkill_then_rerun_resumes_to_the_same_end(tiny_setup: dict[str, Path], tmp_path: Path) -> None:
    """The benchmark's short version: a kill inside a checkpoint save, a rerun killed at a random moment, and a
    last rerun of the same command that must resume and log the uninterrupted run's final loss."""
    plan = bench_crash_resume.Plan(model=tiny_setup["model"], train=tiny_setup["train"], max_steps=6)
    (trial,) = bench_crash_resume.run_trials(1, plan, tmp_path, seed=1, stages=("post-training",), kills=2)
    assert trial.mode == "save+random"
    assert trial.in_save and trial.set_aside >= 1  # a kill landed while a checkpoint was being written
    assert trial.passed, trial


def test_a_checkpoint_of_another_model_is_one_line_not_a_traceback() -> None:
    from ko_mrs.cli_errors import UsageError
    from ko_mrs.training import train_resuming

    class Mismatched:
        def train(self, resume_from_checkpoint=None):
            raise RuntimeError(
                "Error(s) in loading state_dict for BertForResponseSelection:\n\tsize mismatch for "
                "bert.embeddings.word_embeddings.weight: copying a param with shape [6291, 128]"
            )

    with pytest.raises(UsageError, match=r"out/checkpoint-4: this checkpoint does not fit .*size mismatch") as caught:
        train_resuming(Mismatched(), "out/checkpoint-4")
    assert "\n" not in str(caught.value)
    with pytest.raises(RuntimeError):  # without a checkpoint it is not the user's checkpoint: left as it is
        train_resuming(Mismatched(), None)
