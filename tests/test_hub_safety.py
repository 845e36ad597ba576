"""Issue 9 on the Hub side: a ``--hub_token`` never reaches a file, a log or the Hub; a Hub that is down or
refuses the token stops a run in one line, before training.

Why: Trainer pickles its arguments, token included, into ``training_args.bin`` of the output folder and of
every checkpoint, and pushes both: anyone who can read the repo could then write to the user's account.
These tests run against the loopback Hub of ``hub_server`` with the token given only on the command line.
"""

from __future__ import annotations

from pathlib import Path

import hub_server
import pytest
import torch
from hub_server import HubEnv
from huggingface_hub import HfApi

import run_post_training

local_hub = hub_server.local_hub
hub_env = hub_server.hub_env
fast_retries = hub_server.fast_retries
_no_unknown_routes = hub_server.no_unknown_routes


def post_args(setup: dict[str, Path], output_dir: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path", str(setup["model"]), "--train_files", str(setup["train"]),
        "--output_dir", str(output_dir), "--max_seq_length", "64", "--per_device_train_batch_size", "8",
        "--report_to", "none", "--disable_tqdm", "true", "--seed", "7", "--log_level", "info", *extra,
    ]  # fmt: skip


@pytest.fixture
def token_only_on_command_line(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> str:
    """No HF_TOKEN and no cached login: the pushes can only authenticate with --hub_token."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return hub_env.token


def test_hub_token_is_in_no_saved_file_log_or_pushed_file(
    tiny_setup: dict[str, Path],
    hub_env: HubEnv,
    token_only_on_command_line: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture,
) -> None:
    token, repo_id, out = token_only_on_command_line, hub_env.new_repo_id("token"), tmp_path / "run"
    push = ("--push_to_hub", "--hub_strategy", "checkpoint", "--hub_always_push", "--hub_model_id", repo_id)
    run_post_training.run(
        post_args(tiny_setup, out, "--do_train", "--max_steps", "2", "--save_steps", "1", *push, "--hub_token", token)
    )
    logs = capfd.readouterr()
    assert token not in logs.out + logs.err

    local = [p for p in out.rglob("*") if p.is_file()]
    assert {"training_args.bin", "checkpoint-2/training_args.bin"} <= {str(p.relative_to(out)) for p in local}
    for path in local:
        assert token.encode() not in path.read_bytes(), path
    saved = torch.load(out / "training_args.bin", weights_only=False)
    assert saved.hub_token is None and saved.hub_model_id == repo_id  # the rest of the arguments is kept

    pushed = HfApi(token=token).list_repo_files(repo_id)
    assert {"training_args.bin", "last-checkpoint/training_args.bin", "last-checkpoint/optimizer.pt"} <= set(pushed)
    for name in pushed:
        assert token.encode() not in hub_env.hub.file_content(repo_id, name), name


@pytest.mark.parametrize("failure", ["bad token", "hub down"])
@pytest.mark.parametrize("flag", ["--push_to_hub", "--resume_from_hub"])
def test_hub_failure_at_start_is_one_line_and_exit_2(
    failure: str,
    flag: str,
    tiny_setup: dict[str, Path],
    hub_env: HubEnv,
    token_only_on_command_line: str,
    fast_retries: None,
    tmp_path: Path,
    capfd: pytest.CaptureFixture,
) -> None:
    repo_id, out = hub_env.new_repo_id("failure"), tmp_path / "run"
    token = "hf_not_a_valid_token" if failure == "bad token" else token_only_on_command_line
    hub_args = (
        ["--push_to_hub", "--hub_model_id", repo_id] if flag == "--push_to_hub" else ["--resume_from_hub", repo_id]
    )
    if failure == "hub down":
        hub_env.hub.stop()
    code = run_post_training.main(
        post_args(tiny_setup, out, "--do_train", "--max_steps", "2", *hub_args, "--hub_token", token)
    )
    err = capfd.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"run_post_training.py: error: {flag}") and repo_id in lines[0]
    assert token not in err
    assert not list(out.glob("checkpoint-*"))  # stopped before training
