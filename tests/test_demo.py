"""`make demo` end to end: the demo's model learns, and ranks the original README's example by what it learned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import demo
from ko_mrs.demo_corpus import README_EXAMPLE
from ko_mrs.ranking import ResponseSelector


@pytest.mark.slow
def test_demo_model_learns_and_ranks_the_readme_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--run_dir", str(tmp_path / "run"), "--data_dir", str(tmp_path / "data")]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "fine-tuned" / "test_results.json").read_text())
    assert metrics["test_num_groups"] >= 250
    assert metrics["test_r10@1"] >= 0.5, metrics["test_r10@1"]

    selector = ResponseSelector.from_pretrained(str(tmp_path / "run" / "fine-tuned"), device="cpu")
    scores = selector.score(README_EXAMPLE["context"], README_EXAMPLE["candidates"])
    assert len(set(scores)) == len(scores), scores  # a model that learned nothing scores them all alike
    # the example is printed ranked, the true reply marked; whether it comes first is reported, not yet asserted:
    # the shipped demo model ranks it 2nd or 3rd (BENCHMARKS.md, section 9)
    assert "(* = the true next utterance, ranked" in printed and "* 자동차는 신중히 골라야합니다." in printed
