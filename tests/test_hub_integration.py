"""Issue 5 end to end: the run scripts push to, resume from and load back from a Hub (``hub_server.LocalHub``).

Why: ``hub.py`` and the run scripts promise that a post-training run leaves a usable, resumable Hub repo
(model, tokenizer, remote code, model card, ``last-checkpoint/``), that another machine can continue it
with ``--resume_from_hub`` to the same end, that fine-tuning starts from that repo and publishes its
test results in the card, that the card's snippets run as written, and that a Hub outage never costs
training or local checkpoints. These tests drive the real transformers / huggingface_hub clients against
the local Hub stand-in, with the tiny model of ``conftest.tiny_setup``.

The post-training and fine-tuning runs are module fixtures shared by several tests (each run costs
seconds on a loaded CPU); every test that changes the Hub uses its own repo.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import hub_server
import pytest
from conftest import ROOT
from hub_server import HubEnv, LocalHub, block_non_loopback_connections, point_clients_at
from huggingface_hub import HfApi, ModelCard
from transformers import AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification, AutoTokenizer

import run_fine_tuning
import run_post_training
from ko_mrs.cli_errors import UsageError
from ko_mrs.dialogue_data import build_eval_groups, read_dialogues, write_jsonl
from ko_mrs.hub import CITATION, METRIC_NAMES
from ko_mrs.ranking import ResponseSelector

local_hub = hub_server.local_hub
hub_env = hub_server.hub_env
fast_retries = hub_server.fast_retries
_no_unknown_routes = hub_server.no_unknown_routes

PUSH = ("--push_to_hub", "--hub_strategy", "checkpoint", "--hub_always_push")
SCHEDULE = ("--do_train", "--max_steps", "8", "--save_steps", "2", "--logging_steps", "1")
CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth", "model.safetensors")


def post_args(setup: dict[str, Path], output_dir: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path", str(setup["model"]),
        "--train_files", str(setup["train"]),
        "--output_dir", str(output_dir),
        "--max_seq_length", "64",
        "--per_device_train_batch_size", "8",
        "--learning_rate", "1e-3",
        "--report_to", "none",
        "--disable_tqdm", "true",
        "--seed", "7",
        *extra,
    ]  # fmt: skip


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def folder_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha(p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def hub_json(hub: LocalHub, repo_id: str, path: str) -> dict:
    return json.loads(hub.file_content(repo_id, path))


def losses(trainer_state: dict) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in trainer_state["log_history"] if "loss" in e}


def commit_titles(repo_id: str) -> list[str]:
    return [c.title for c in HfApi().list_repo_commits(repo_id)]


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def module_hub(local_hub: LocalHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    """``hub_env`` for module fixtures: clients pointed at the local Hub while the module's runs happen."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        local_hub.start()
        point_clients_at(local_hub, monkeypatch, tmp_path_factory.mktemp("module_hf_home"))
        block_non_loopback_connections(monkeypatch)
        yield local_hub


@pytest.fixture(scope="module")
def post_trained(module_hub: LocalHub, tiny_setup: dict[str, Path], tmp_path_factory) -> SimpleNamespace:
    """An uninterrupted 8-step post-training run that pushes every 2 steps with hub_strategy=checkpoint."""
    repo_id = f"{module_hub.user}/post-trained-{uuid.uuid4().hex[:8]}"
    out = tmp_path_factory.mktemp("post_trained") / "run"
    metrics = run_post_training.run(post_args(tiny_setup, out, *SCHEDULE, *PUSH, "--hub_model_id", repo_id))
    return SimpleNamespace(repo_id=repo_id, out=out, metrics=metrics)


@pytest.fixture(scope="module")
def fine_tuned(post_trained: SimpleNamespace, tiny_setup: dict[str, Path], tmp_path_factory) -> SimpleNamespace:
    """Fine-tuning from the post-trained Hub repo, predicting fixed test groups, pushed to the Hub."""
    root = tmp_path_factory.mktemp("fine_tuned")
    dialogues, _ = read_dialogues(tiny_setup["test"])
    groups = build_eval_groups(dialogues, num_candidates=10, seed=0)[:12]
    groups_file = write_jsonl(groups, root / "test_groups.jsonl")
    repo_id = f"{post_trained.repo_id.split('/')[0]}/fine-tuned-{uuid.uuid4().hex[:8]}"
    out = root / "run"
    metrics = run_fine_tuning.run(
        [
            "--model_name_or_path", post_trained.repo_id,
            "--train_files", str(tiny_setup["train"]),
            "--test_groups", str(groups_file),
            "--output_dir", str(out),
            "--do_train", "--do_predict",
            "--max_steps", "4",
            "--learning_rate", "1e-3",
            "--max_seq_length", "64",
            "--per_device_train_batch_size", "8",
            "--per_device_eval_batch_size", "40",
            "--report_to", "none",
            "--disable_tqdm", "true",
            "--seed", "7",
            "--push_to_hub", "--hub_model_id", repo_id,
        ]
    )  # fmt: skip
    return SimpleNamespace(repo_id=repo_id, out=out, metrics=metrics, groups=groups)


# -- 1. what a post-training run leaves on the Hub ---------------------------------------------------
def test_post_training_push_leaves_model_code_card_and_last_checkpoint(
    post_trained: SimpleNamespace, hub_env: HubEnv
) -> None:
    repo_id, out, hub = post_trained.repo_id, post_trained.out, hub_env.hub
    files = set(HfApi().list_repo_files(repo_id))
    assert {"model.safetensors", "config.json", "modeling_mrs.py", "README.md"} <= files
    assert {"tokenizer.json", "tokenizer_config.json"} <= files
    assert {f"last-checkpoint/{name}" for name in CHECKPOINT_FILES} <= files
    assert not [f for f in files if f.startswith(("checkpoint-", "_"))], files  # Trainer's ignore patterns

    # The repo's top level is the finished local output, byte for byte (the end-of-training push).
    local = [p for p in out.iterdir() if p.is_file()]
    assert {p.name for p in local} <= files
    for path in local:
        assert sha(hub.file_content(repo_id, path.name)) == sha(path.read_bytes()), path.name
    # last-checkpoint/ is the final checkpoint, byte for byte.
    for name, digest in folder_hashes(out / "checkpoint-8").items():
        assert sha(hub.file_content(repo_id, f"last-checkpoint/{name}")) == digest, name
    assert hub_json(hub, repo_id, "last-checkpoint/trainer_state.json")["global_step"] == 8

    config = hub_json(hub, repo_id, "config.json")
    assert config["model_type"] == "bert"
    assert config["auto_map"]["AutoModelForPreTraining"] == "modeling_mrs.BertForFineGrainedPostTraining"
    assert "[EOT]" in AutoTokenizer.from_pretrained(repo_id).all_special_tokens

    card = ModelCard.load(repo_id)
    assert card.data.language == "ko"
    assert "post-training" in card.data.tags and "bert-fp" in card.data.tags
    assert "Stage: **post-training**" in card.text
    assert "post-training (MLM + URC (3-class) on short dialogue windows" in card.text  # what the heads learned
    assert CITATION in card.text and "Fine-grained Post-training" in card.text

    titles = commit_titles(repo_id)
    for step in (2, 4, 6, 8):
        assert f"Training in progress, step {step}" in titles
        assert f"Training in progress, step {step}, checkpoint" in titles
    assert titles[0] == "End of training"  # newest first
    assert "Model save" not in titles  # the scripts' save_model() does not push on its own (push_final does)


# -- 2. --resume_from_hub continues another machine's run to the same end -------------------------------
def test_resume_from_hub_ends_like_an_uninterrupted_run(
    post_trained: SimpleNamespace,
    tiny_setup: dict[str, Path],
    hub_env: HubEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo_id, hub = hub_env.new_repo_id("interrupted"), hub_env.hub
    args = (*SCHEDULE, *PUSH, "--hub_model_id", repo_id)
    original_step = run_post_training.PostTrainingTrainer.training_step
    crashed = []

    def crash_after_checkpoint_6(self, *a, **k):
        if self.state.global_step == 6:  # checkpoint-6 was saved and its push queued
            crashed.append(self)
            raise Interrupted("simulated preemption")
        return original_step(self, *a, **k)

    monkeypatch.setattr(run_post_training.PostTrainingTrainer, "training_step", crash_after_checkpoint_6)
    first = tmp_path / "machine-a"
    with pytest.raises(Interrupted):
        run_post_training.run(post_args(tiny_setup, first, *args))
    monkeypatch.setattr(run_post_training.PostTrainingTrainer, "training_step", original_step)
    trainer = crashed[0]
    trainer._finish_current_push()  # the background pushes outlive the crash; let them land
    assert [job.exception() for job in trainer.push_in_progress.jobs] == [None] * len(trainer.push_in_progress.jobs)
    assert hub_json(hub, repo_id, "last-checkpoint/trainer_state.json")["global_step"] == 6
    for name, digest in folder_hashes(first / "checkpoint-6").items():
        assert sha(hub.file_content(repo_id, f"last-checkpoint/{name}")) == digest, name

    # Another machine: a fresh output_dir, only the Hub repo to go on; it keeps pushing to the same repo.
    second = tmp_path / "machine-b"
    metrics = run_post_training.run(post_args(tiny_setup, second, *args, "--resume_from_hub", repo_id))
    assert (second / "_hub_resume" / "last-checkpoint" / "trainer_state.json").is_file()
    state = json.loads((second / "trainer_state.json").read_text())
    assert state["global_step"] == 8 and metrics["epoch"] == pytest.approx(post_trained.metrics["epoch"])
    assert sorted(p.name for p in second.glob("checkpoint-*")) == ["checkpoint-8"]  # steps 7-8 only were trained

    resumed = losses(state)
    reference = losses(json.loads((post_trained.out / "trainer_state.json").read_text()))
    assert set(resumed) == set(range(1, 9))
    for step in range(1, 9):  # 1-6 come from the Hub checkpoint's history, 7-8 were trained here
        assert resumed[step] == pytest.approx(reference[step], rel=1e-3), step

    # The resumed run's pushes: last-checkpoint/ is now step 8, and the download was not uploaded back.
    assert hub_json(hub, repo_id, "last-checkpoint/trainer_state.json")["global_step"] == 8
    files = HfApi().list_repo_files(repo_id)
    assert "README.md" in files and not [f for f in files if f.startswith("_")], files
    assert commit_titles(repo_id)[0] == "End of training"


# -- 3. the post-trained repo loads with the Auto classes --------------------------------------------
def test_post_trained_repo_loads_with_auto_classes(post_trained: SimpleNamespace, hub_env: HubEnv) -> None:
    repo_id, out = post_trained.repo_id, post_trained.out
    local_encoder = AutoModel.from_pretrained(out).state_dict()
    hub_encoder = AutoModel.from_pretrained(repo_id).state_dict()
    assert hub_encoder.keys() == local_encoder.keys()
    for name, tensor in local_encoder.items():
        assert (hub_encoder[name] == tensor).all(), name

    classifier = AutoModelForSequenceClassification.from_pretrained(repo_id)  # no trust_remote_code needed
    assert type(classifier).__name__ == "BertForSequenceClassification"
    for name, tensor in classifier.bert.state_dict().items():
        assert (local_encoder[name] == tensor).all(), name

    model = AutoModelForPreTraining.from_pretrained(repo_id, trust_remote_code=True)
    assert type(model).__name__ == "BertForFineGrainedPostTraining"
    assert type(model).__module__.startswith("transformers_modules")  # the repo's modeling_mrs.py, not ours
    local_model = AutoModelForPreTraining.from_pretrained(out, trust_remote_code=True).state_dict()
    urc = {k: v for k, v in model.state_dict().items() if k.startswith("urc_classifier.")}
    assert urc
    for name, tensor in urc.items():
        assert (local_model[name] == tensor).all(), name


# -- 4. fine-tuning from the Hub repo publishes its test results ---------------------------------------
def test_fine_tuning_from_hub_publishes_results_in_the_card(
    post_trained: SimpleNamespace, fine_tuned: SimpleNamespace, hub_env: HubEnv
) -> None:
    repo_id, metrics = fine_tuned.repo_id, fine_tuned.metrics
    card = ModelCard.load(repo_id)
    results = {r.metric_type: r for r in card.data.eval_results}
    expected = {key: round(metrics[f"test_{key}"], 4) for key in METRIC_NAMES if f"test_{key}" in metrics}
    assert {"r10@1", "r10@2", "r10@5", "mrr"} <= expected.keys()
    assert {key: r.metric_value for key, r in results.items()} == expected
    assert {r.task_type for r in results.values()} == {"text-ranking"}
    assert card.data.base_model == post_trained.repo_id
    assert "Stage: **fine-tuning**" in card.text and CITATION in card.text

    config = hub_json(hub_env.hub, repo_id, "config.json")
    assert "auto_map" not in config and config["mrs_max_length"] == 64

    # The Hub model scores a test group exactly as the run's own prediction did.
    selector = ResponseSelector.from_pretrained(repo_id, device="cpu")
    predictions = [json.loads(line) for line in (fine_tuned.out / "test_predictions.jsonl").read_text().splitlines()]
    group = fine_tuned.groups[0]
    ordered = sorted((p for p in predictions if p["group_id"] == group["group_id"]), key=lambda p: p["candidate_index"])
    expected_scores = [p["probability"] for p in ordered]
    assert len(expected_scores) == len(group["candidates"]) == 10
    assert selector.score(group["context"], group["candidates"]) == pytest.approx(expected_scores, abs=1e-5)


# -- 5. the cards' usage snippets run as written -----------------------------------------------------
SNIPPET_RUNNER = textwrap.dedent(
    """
    import json, sys
    for index, source in enumerate(json.load(open(sys.argv[1], encoding="utf-8"))):
        print(f"--- snippet {index}", flush=True)
        exec(compile(source, f"<snippet {index}>", "exec"), {"__name__": "__main__"})  # fresh globals each
    print("--- done", flush=True)
    """
)


def python_blocks(card_text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card_text, flags=re.DOTALL)


def test_card_snippets_run_against_the_hub(
    post_trained: SimpleNamespace, fine_tuned: SimpleNamespace, hub_env: HubEnv, tmp_path: Path
) -> None:
    post_card = hub_env.hub.file_content(post_trained.repo_id, "README.md").decode()
    fine_card = hub_env.hub.file_content(fine_tuned.repo_id, "README.md").decode()
    post_snippets, fine_snippets = python_blocks(post_card), python_blocks(fine_card)
    assert len(post_snippets) == 3 and len(fine_snippets) == 2  # post-training: encoder, URC heads, sessions
    assert all(post_trained.repo_id in s for s in post_snippets)
    assert all(fine_tuned.repo_id in s for s in fine_snippets)

    snippets = tmp_path / "snippets.json"
    snippets.write_text(json.dumps(post_snippets + fine_snippets), encoding="utf-8")
    runner = tmp_path / "runner.py"
    runner.write_text(SNIPPET_RUNNER, encoding="utf-8")
    seen = len(hub_env.hub.requests)
    env = {**os.environ, **hub_env.env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(runner), str(snippets)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "--- done" in result.stdout
    sessions = result.stdout.split("--- snippet 2")[1].split("--- snippet 3")[0].strip().splitlines()
    assert len(sessions) == 4 and sessions[0].startswith("{'other_dialogue': "), sessions  # predict, ..., segment
    ranked = result.stdout.split("--- snippet 3")[1].split("--- snippet 4")[0].strip().splitlines()
    assert len(ranked) == 3 and all(re.match(r"^\d\.\d{3}  \S", line) for line in ranked), ranked
    probabilities = json.loads(result.stdout.split("--- snippet 4")[1].split("--- done")[0].strip())
    assert len(probabilities) == 3 and all(0 <= p <= 1 for p in probabilities)
    paths = [path for _, path in hub_env.hub.requests[seen:]]  # the snippets really went to the local Hub
    assert any(post_trained.repo_id in p for p in paths) and any(fine_tuned.repo_id in p for p in paths)


# -- 6. a Hub outage costs neither training nor local checkpoints ----------------------------------------
def test_failed_push_is_reported_and_training_goes_on(
    tiny_setup: dict[str, Path],
    hub_env: HubEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fast_retries: None,
) -> None:
    repo_id, hub, out = hub_env.new_repo_id("outage"), hub_env.hub, tmp_path / "run"
    original_step = run_post_training.PostTrainingTrainer.training_step
    at_failure: dict[str, str] = {}

    def outage_between_steps_2_and_4(self, *a, **k):
        if self.state.global_step == 2:  # checkpoint-2 pushed: the Hub goes down before checkpoint-4
            self._finish_current_push()
            hub.stop()
        elif self.state.global_step == 4:  # checkpoint-4's push has failed: the Hub comes back
            self._finish_current_push()
            jobs = self.push_in_progress.jobs  # the model folder and last-checkpoint/
            assert len(jobs) == 2 and all(job.exception() is not None for job in jobs)
            at_failure.update(folder_hashes(out / "checkpoint-4"))
            hub.start()
        return original_step(self, *a, **k)

    monkeypatch.setattr(run_post_training.PostTrainingTrainer, "training_step", outage_between_steps_2_and_4)
    caplog.set_level(logging.WARNING, logger="ko_mrs.hub")
    # Trainer's default hub_always_push=False: the waits above make the default deterministic.
    push = ("--push_to_hub", "--hub_strategy", "checkpoint", "--hub_model_id", repo_id)
    metrics = run_post_training.run(
        post_args(tiny_setup, out, "--do_train", "--max_steps", "6", "--save_steps", "2", *push)
    )
    assert hub.running and metrics["epoch"] > 0

    # Reported, once per failed job (model folder and last-checkpoint/), naming the step and the local copy.
    reports = [r.getMessage() for r in caplog.records if r.name == "ko_mrs.hub" and r.levelno == logging.WARNING]
    assert len(reports) == 2, reports
    for message in reports:
        assert "checkpoint of step 4" in message and "failed" in message
        assert "Training goes on" in message and f"{out / 'checkpoint-4'} is intact" in message

    # Training went on to the end, and the local checkpoints are intact.
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 6
    assert folder_hashes(out / "checkpoint-4") == at_failure
    for step in (2, 4, 6):
        state = json.loads((out / f"checkpoint-{step}" / "trainer_state.json").read_text())
        assert state["global_step"] == step

    # The next save pushed again: the Hub has steps 2 and 6, not 4, and last-checkpoint/ is checkpoint-6.
    titles = commit_titles(repo_id)
    assert "Training in progress, step 6, checkpoint" in titles and "Training in progress, step 2" in titles
    assert not [t for t in titles if "step 4" in t]
    assert titles[0] == "End of training"
    for name, digest in folder_hashes(out / "checkpoint-6").items():
        assert sha(hub.file_content(repo_id, f"last-checkpoint/{name}")) == digest, name


def test_final_push_failure_exits_naming_the_output_dir(
    tiny_setup: dict[str, Path],
    hub_env: HubEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fast_retries: None,
) -> None:
    repo_id, hub, out = hub_env.new_repo_id("final-outage"), hub_env.hub, tmp_path / "run"
    original_step = run_post_training.PostTrainingTrainer.training_step

    def hub_goes_down(self, *a, **k):
        hub.stop()  # after Trainer created the repo
        return original_step(self, *a, **k)

    monkeypatch.setattr(run_post_training.PostTrainingTrainer, "training_step", hub_goes_down)
    args = ("--do_train", "--max_steps", "2", "--push_to_hub", "--hub_model_id", repo_id)
    with pytest.raises(UsageError) as exit_info:
        run_post_training.run(post_args(tiny_setup, out, *args))
    message = str(exit_info.value)
    assert message.startswith("pushing") and repo_id in message
    assert f"saved locally in {out}" in message
    assert f"`hf upload {repo_id} {out}`" in message
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()

    # Once the Hub is back, the advised command publishes the run.
    hub.start()
    command = re.search(r"`(hf upload [^`]+)`", message).group(1).split()
    hf = Path(sys.executable).with_name("hf")
    result = subprocess.run([str(hf), *command[1:]], env={**os.environ, **hub_env.env}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"model.safetensors", "config.json", "README.md", "modeling_mrs.py"} <= set(HfApi().list_repo_files(repo_id))
