"""The GPU script's work list (benchmarks/quality/device_run.sh runs `run_quality.py jobs`, line by line)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "quality" / "run_quality.py"


def jobs(*args: str) -> list[tuple[str, int]]:
    out = subprocess.run([sys.executable, str(SCRIPT), "jobs", *args], capture_output=True, text=True, check=True)
    return [(row, int(seed)) for row, seed in (line.split() for line in out.stdout.splitlines())]


def test_every_row_of_the_english_table_runs_for_every_seed_seed_by_seed():
    listed = jobs("--suite", "en", "--seeds", "42", "43", "44")
    rows = ["ft-only", "mlm", "mlm-warmup", "mlm-nsp", "mlm-nsp-warmup", "urc", "urc-warmup", "bert-fp"]
    assert sorted({row for row, _ in listed}) == sorted([*rows, "bert-fp-warmup"])
    assert len(listed) == len(set(listed)) == 27
    # all rows of a seed before the next seed: a call cut short by its time limit leaves whole seeds
    assert [seed for _, seed in listed] == [42] * 9 + [43] * 9 + [44] * 9
    assert listed[0] == ("ft-only", 42)  # the job that also runs the untrained sanity row starts first


def test_the_korean_suite_lists_its_own_rows():
    assert jobs("--suite", "ko", "--seeds", "7") == [("ft-only", 7), ("bert-fp", 7), ("bert-fp-warmup", 7)]


def test_the_device_script_parses():
    assert subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "quality" / "device_run.sh")]).returncode == 0
