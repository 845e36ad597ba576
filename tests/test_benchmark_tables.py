"""The over-seeds tables of the speaker ablation, the context sweep (``--mean_of``) and the keyword-bias rows, on
hand-written results."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_keyword_bias  # noqa: E402
import bench_speakers  # noqa: E402
import sweep_context  # noqa: E402


def _write(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def _cell(out: Path, name: str, r10: float, mrr: float, steps: int, seconds: float, contexts_per_s: float) -> None:
    _write(out / name / "test_results.json", {"test_r10@1": r10, "test_mrr": mrr})
    _write(out / name / "trainer_state.json", {"global_step": steps})
    _write(out / name / "train_results.json", {"train_runtime": seconds})
    _write(out / name / "ranking_speed.json", {"contexts_per_s": contexts_per_s})


def test_sweep_cells_are_averaged_over_the_seeds_that_ran_them(tmp_path: Path) -> None:
    s42, s43 = tmp_path / "s42", tmp_path / "s43"
    _cell(s42, "turns1_len128", 0.30, 0.50, steps=100, seconds=10.0, contexts_per_s=20.0)
    _cell(s43, "turns1_len128", 0.40, 0.60, steps=100, seconds=20.0, contexts_per_s=10.0)
    _cell(s42, "turnsall_len256", 0.25, 0.45, steps=50, seconds=64.0, contexts_per_s=5.0)
    lines = sweep_context.mean_table([s42, s43]).splitlines()
    # 100 steps x 64 pairs over 10 s and over 20 s: 640 and 320 pairs/s, mean 480
    assert "| 1 | 128 | 2 | 0.350 ± 0.071 | 0.550 ± 0.071 | 480 | 15.0 |" in lines
    assert "| all | 256 | 1 | 0.250 | 0.450 | 50 | 5.0 |" in lines  # one seed: no spread
    assert len(lines) == 4  # header, rule, and only the two cells that exist


def test_speaker_rows_are_averaged_over_seed_folders(tmp_path: Path) -> None:
    def result(r10: float, wins: float) -> dict:
        metrics = {"r10@1": r10, "mrr": r10 + 0.2}
        return {"two-party": metrics, "multi-party": {**metrics, "wrong_speaker_wins": wins}}

    for seed, (r10, wins) in {"a": (0.4, 0.5), "b": (0.2, 0.3)}.items():
        _write(tmp_path / seed / "speaker_tokens" / "result.json", result(r10, wins))
    lines = bench_speakers.mean_table([tmp_path / "a", tmp_path / "b"]).splitlines()
    spread = "0.300 ± 0.141 | 0.500 ± 0.141 | 0.300 ± 0.141 | 0.500 ± 0.141 | 0.400 ± 0.141"
    assert lines[2:] == [f"| speaker tokens | 2 | {spread} |"]  # rows without results are left out


def test_keyword_rows_are_compared_with_random_negatives_seed_by_seed(tmp_path: Path) -> None:
    def run(name: str, r10: float, accuracy: float, negation: float | None) -> None:
        _write(tmp_path / name / "test_results.json", {"test_r10@1": r10, "test_mrr": r10 + 0.1})
        adversarial = {"accuracy": accuracy, "topic_accuracy": accuracy}
        if negation is not None:
            adversarial["negation_accuracy"] = negation
        _write(tmp_path / name / "adversarial_results.json", adversarial)

    run("random-s42", 0.50, 0.50, 0.60)
    run("random-s43", 0.40, 0.60, 0.70)
    run("both-s42", 0.48, 0.80, None)  # the suite of this run had no negation pair
    run("both-s43", 0.40, 0.90, 0.90)
    run("both-s44", 0.90, 0.70, 0.80)  # no random run of seed 44: left out of the paired difference
    (tmp_path / "hard-s42").mkdir()  # unfinished: no results yet
    lines = bench_keyword_bias.mean_table(bench_keyword_bias.finished(tmp_path)).splitlines()
    negation = 2 + bench_keyword_bias.TYPES.index("negation")
    random, both = (line.strip("| ").split(" | ") for line in lines[2:])
    assert len(lines) == 4  # header, rule, random, both: the unfinished row is not listed
    assert random[:4] == ["random", "2", "0.450 ± 0.071", "-"]
    assert both[:4] == ["both", "3", "0.593 ± 0.269", "-0.010 ± 0.014 (n=2)"]
    assert both[4] == "0.800 ± 0.100"
    assert both[3 + negation] == "0.850 ± 0.071"  # over the two runs that had negation pairs


def test_curriculum_rows_share_one_random_first_half_a_seed(tmp_path: Path, monkeypatch) -> None:
    calls: list[tuple[str, list[str], bool]] = []

    def fine_tune(out: Path, seed: int, args, extra: list[str], *, tested: bool = True) -> None:
        calls.append((out.name, extra, tested))
        _write(out / "train_results.json", {})
        if tested:
            _write(out / "test_results.json", {"test_r10@1": 0.5, "test_mrr": 0.6})
            _write(out / "adversarial_results.json", {"accuracy": 0.7})

    monkeypatch.setattr(bench_keyword_bias, "RUNS", tmp_path)
    monkeypatch.setattr(bench_keyword_bias, "_fine_tune", fine_tune)
    args = argparse.Namespace(budget="cpu", pooling="cls")
    for row in ("curriculum-adversarial", "curriculum-both", "curriculum-both"):  # the last one is finished: read
        bench_keyword_bias.run_row(row, 42, args)
    first = str(tmp_path / "cpu" / "random-first-half-s42")
    second = ["--model_name_or_path", first, "--max_steps", "100", "--data_seed", "1042"]
    assert calls == [
        ("random-first-half-s42", ["--max_steps", "100"], False),  # half the cpu budget's 200 steps, untested
        ("curriculum-adversarial-s42", [*second, *bench_keyword_bias.ROWS["adversarial"]], True),
        ("curriculum-both-s42", [*second, *bench_keyword_bias.ROWS["both"]], True),
    ]
    rows = [r.row for r in bench_keyword_bias.finished(tmp_path / "cpu")]
    assert rows == ["curriculum-adversarial", "curriculum-both"]  # the first half is no row of the table
