"""Every bad input of tests/data/bad_inputs/ gets one clear line and exit 2 from the CLI that reads it (issue 9).

Why: a user who feeds a wrong file must learn which file, line and field is wrong, without a traceback and
without a half-written output; a traceback or a silent wrong result breaks trust in a tool that runs for days.
The cases run in-process through each CLI's ``main`` (one model load for the whole corpus), and a few also as
real subprocesses, so the exit status and stderr are the ones a shell sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

import run_fine_tuning
import run_post_training
from ko_mrs import dialogue_data, ranking, session

CORPUS = ROOT / "tests" / "data" / "bad_inputs"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
TRAINING = ("--report_to", "none", "--disable_tqdm", "true", "--max_steps", "1", "--max_seq_length", "64")


def argv_for(case: dict, model: Path, out: Path, directory: Path) -> tuple[object, list[str]]:
    """The CLI's ``main`` and its arguments for one case; every output goes under ``out``."""
    path = str(CORPUS / case["file"])
    extra = [str(directory) if arg == "{dir}" else arg for arg in case.get("args", [])]
    common = ["--model_name_or_path", str(model), "--output_dir", str(out / "run"), *TRAINING]
    cli = case["cli"]
    if cli == "stats":
        return dialogue_data.main, ["stats", path, *extra]
    if cli == "groups":
        return dialogue_data.main, ["groups", path, "--out", str(out / "groups.jsonl"), *extra]
    if cli == "rank":
        return ranking.main, ["--model", str(model), "--input", path, "--output", str(out / "ranked.jsonl"), *extra]
    if cli in ("session_score", "session_segment"):
        command = cli.removeprefix("session_")
        return session.main, [command, "--model", str(model), "--input", path, "--output", str(out / "s.jsonl"), *extra]
    if cli == "predict":
        return run_fine_tuning.main, [*common, "--do_predict", "--test_groups", path]
    if cli == "post_train":
        return run_post_training.main, [*common, "--do_train", "--train_files", path]
    if cli == "fine_train":
        return run_fine_tuning.main, [*common, "--do_train", "--train_files", path]
    if cli == "post_config":
        return run_post_training.main, [path, *common]
    raise AssertionError(f"unknown cli {cli!r} in cases.yaml")


def test_corpus_covers_the_issue() -> None:
    """At least 60 files, every one of them a listed case, and the issue's numbered cases all present."""
    files = {p.name for p in CORPUS.iterdir()} - {"cases.yaml"}
    assert len(files) >= 60 and files == {case["file"] for case in CASES}
    noted = {case.get("why", "") for case in CASES}
    for number in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10):
        assert f"issue 9, 3.{number}" in noted, number


@pytest.mark.parametrize("case", CASES, ids=[case["file"] for case in CASES])
def test_bad_input_gives_one_line_and_exit_2(
    case: dict, tiny_setup: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    out, directory = tmp_path / "out", tmp_path / "out" / "a-directory"
    directory.mkdir(parents=True)
    main, argv = argv_for(case, tiny_setup["model"], out, directory)
    code = main(argv)
    err = capfd.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert case["expect"] in lines[0] and "Traceback" not in err
    assert ": error: " in lines[0]
    named = case["args"][0] if case.get("args") else case["file"]  # an argument error names the argument
    assert named in lines[0]
    assert [p for p in out.rglob("*") if p != directory] == [], "output left behind"


SUBPROCESS_CASES = ["duplicate_ids.jsonl", "rank_surrogate.jsonl", "groups_no_positive.jsonl", "train_empty.jsonl"]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_in_a_real_process(name: str, tiny_setup: dict[str, Path], tmp_path: Path) -> None:
    """The shell's view: exit status 2 and a single stderr line, whatever the libraries print on import."""
    case = next(c for c in CASES if c["file"] == name)
    main, argv = argv_for(case, tiny_setup["model"], tmp_path / "out", tmp_path)
    module = main.__module__
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", module, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and case["expect"] in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        (["--do_trian"], "Some specified arguments are not used by the HfArgumentParser: ['--do_trian']"),
        (["--optim", "nope"], "argument --optim: invalid choice: 'nope'"),
        (["--max_steps"], "argument --max_steps/--max-steps: expected one argument"),
        (["--load_best_model_at_end", "true", "--eval_strategy", "epoch"], "--load_best_model_at_end requires"),
    ],
)
def test_argument_errors_are_one_line(
    extra: list[str], expect: str, tiny_setup: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """A typo in an option gave a ValueError traceback, and argparse's own errors a 150-line usage dump."""
    argv = ["--model_name_or_path", str(tiny_setup["model"]), "--output_dir", str(tmp_path / "run"), *extra]
    try:
        code = run_post_training.main(argv)
    except SystemExit as exit_:  # argparse exits by itself
        code = exit_.code
    err = capfd.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err[-2000:]
    assert ": error: " in err and expect in err and "Traceback" not in err  # prog is sys.argv[0]: pytest here


def test_empty_train_files_in_a_config_is_one_line(
    tiny_setup: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """Issue 9, 3.1: ``train_files: []`` in a config reached datasets ("corresponds to no data")."""
    config = tmp_path / "post.yaml"
    config.write_text(yaml.safe_dump({"train_files": [], "model_name_or_path": str(tiny_setup["model"])}), "utf-8")
    assert run_post_training.main([str(config), "--output_dir", str(tmp_path / "run"), "--do_train"]) == 2
    assert capfd.readouterr().err == "run_post_training.py: error: --train_files is required\n"
