"""Tests for mrs_metrics and the local `evaluate` wrapper, against hand-computed values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ko_mrs.metrics import compute_ranking_metrics, format_mean_sd, format_metrics_table

REPO_ROOT = Path(__file__).resolve().parents[1]
METRIC_DIR = REPO_ROOT / "metrics" / "response_selection"
RANK_KEYS = ("r10@1", "r10@2", "r10@5", "mrr", "map", "p@1")


def one_group(positive_ranks: list[int], size: int = 10, gid: str = "g") -> tuple[list, list, list]:
    """Rows of one group with strictly decreasing scores and positives at the given 1-based ranks."""
    scores = [float(size - i) for i in range(size)]
    labels = [1 if i + 1 in positive_ranks else 0 for i in range(size)]
    return [gid] * size, scores, labels


def reference_metrics(group_ids: list, scores: list, labels: list, ks=(1, 2, 5)) -> dict[str, float]:
    """Straight port of the Douban/BERT-FP per-session loop, with the pessimistic tie rule."""
    groups: dict = {}
    for gid, score, label in zip(group_ids, scores, labels, strict=True):
        groups.setdefault(gid, []).append((score, label))
    per_group = []
    for rows in groups.values():
        ranked = [label for _, label in sorted(rows, key=lambda r: (-r[0], r[1]))]
        n_pos = sum(ranked)
        if n_pos == 0:
            continue
        hits, precisions = 0, []
        for rank, label in enumerate(ranked, start=1):
            if label:
                hits += 1
                precisions.append(hits / rank)
        values = [sum(ranked[:k]) / n_pos for k in ks]
        values += [1.0 / (ranked.index(1) + 1), sum(precisions) / n_pos, float(ranked[0])]
        per_group.append(values)
    means = np.mean(per_group, axis=0)
    names = [f"r@{k}" for k in ks] + ["mrr", "map", "p@1"]
    return dict(zip(names, means.tolist(), strict=True))


def random_rows(seed: int, num_groups: int = 300) -> tuple[list, list, list]:
    """Groups of varied size, several or no positives, and many tied (coarsely rounded) scores."""
    rng = np.random.default_rng(seed)
    gids, scores, labels = [], [], []
    for g in range(num_groups):
        size = int(rng.integers(1, 12))
        gids += [f"ctx-{g}"] * size
        scores += np.round(rng.normal(size=size), 1).tolist()
        labels += rng.binomial(1, 0.25, size=size).tolist()
    return gids, scores, labels


def test_perfect_ranker_scores_one_everywhere() -> None:
    gids, scores, labels = [], [], []
    for g in range(5):
        ids, s, y = one_group([1], gid=str(g))
        gids, scores, labels = gids + ids, scores + s, labels + y
    result = compute_ranking_metrics(gids, scores, labels)
    assert {k: result[k] for k in RANK_KEYS} == dict.fromkeys(RANK_KEYS, 1.0)
    assert result["num_groups"] == 5
    assert result["groups_without_positive"] == 0
    assert result["num_rows"] == 50


def test_positive_ranked_third() -> None:
    result = compute_ranking_metrics(*one_group([3]))
    assert result["r10@1"] == 0.0
    assert result["r10@2"] == 0.0
    assert result["r10@5"] == 1.0
    assert result["mrr"] == pytest.approx(1 / 3)
    assert result["map"] == pytest.approx(1 / 3)
    assert result["p@1"] == 0.0


def test_several_positives_divide_recall_by_positives() -> None:
    # Group a: positives at ranks 1 and 3 -> R@1 = 1/2, R@2 = 1/2, R@5 = 1, MRR = 1,
    #          AP = (1/1 + 2/3) / 2 = 5/6, P@1 = 1.
    # Group b: positives at ranks 2, 4 and 7 -> R@1 = 0, R@2 = 1/3, R@5 = 2/3, MRR = 1/2,
    #          AP = (1/2 + 2/4 + 3/7) / 3 = 10/21, P@1 = 0.
    a = one_group([1, 3], gid="a")
    b = one_group([2, 4, 7], gid="b")
    result = compute_ranking_metrics(a[0] + b[0], a[1] + b[1], a[2] + b[2])
    assert result["r10@1"] == pytest.approx((1 / 2 + 0) / 2)
    assert result["r10@2"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert result["r10@5"] == pytest.approx((1 + 2 / 3) / 2)
    assert result["mrr"] == pytest.approx((1 + 1 / 2) / 2)
    assert result["map"] == pytest.approx((5 / 6 + 10 / 21) / 2)
    assert result["p@1"] == pytest.approx(0.5)


def test_group_without_positive_is_skipped_and_counted() -> None:
    scored = one_group([3], gid="scored")
    empty = one_group([], gid="empty")
    result = compute_ranking_metrics(empty[0] + scored[0], empty[1] + scored[1], empty[2] + scored[2])
    assert result["num_groups"] == 1
    assert result["groups_without_positive"] == 1
    assert result["num_rows"] == 20
    assert result["mrr"] == pytest.approx(1 / 3)


def test_no_positive_anywhere_raises() -> None:
    with pytest.raises(ValueError, match="no group has a positive"):
        compute_ranking_metrics(*one_group([]))


def test_constant_scores_get_no_credit() -> None:
    gids, _, labels = one_group([1])
    result = compute_ranking_metrics(gids, [0.5] * 10, labels)
    assert result["r10@1"] == 0.0
    assert result["r10@2"] == 0.0
    assert result["r10@5"] == 0.0
    assert result["p@1"] == 0.0
    assert result["mrr"] == pytest.approx(1 / 10)
    assert result["map"] == pytest.approx(1 / 10)


def test_partial_tie_puts_negative_first() -> None:
    # The positive shares the top score with one negative, so it ranks second either way round.
    for labels in ([1, 0, 0], [0, 1, 0]):
        result = compute_ranking_metrics(["g"] * 3, [2.0, 2.0, 1.0], labels, ks=(1, 2))
        assert result["r3@1"] == 0.0
        assert result["r3@2"] == 1.0
        assert result["mrr"] == pytest.approx(0.5)


def test_row_order_does_not_matter() -> None:
    gids, scores, labels = random_rows(seed=0)
    expected = compute_ranking_metrics(gids, scores, labels)
    perm = np.random.default_rng(1).permutation(len(gids))
    shuffled = compute_ranking_metrics([gids[i] for i in perm], [scores[i] for i in perm], [labels[i] for i in perm])
    assert shuffled.keys() == expected.keys()
    assert shuffled == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_matches_per_group_reference_loop() -> None:
    gids, scores, labels = random_rows(seed=2)
    result = compute_ranking_metrics(gids, scores, labels)
    assert {k: v for k, v in result.items() if k in ("r@1", "r@2", "r@5", "mrr", "map", "p@1")} == (
        pytest.approx(reference_metrics(gids, scores, labels), rel=1e-12)
    )


def test_key_names_follow_group_size() -> None:
    uniform = compute_ranking_metrics(["a", "a", "b", "b"], [1.0, 0.0, 0.0, 1.0], [1, 0, 1, 0])
    assert {"r2@1", "r2@2", "r2@5"} <= uniform.keys()
    mixed = compute_ranking_metrics(["a", "a", "b"], [1.0, 0.0, 1.0], [1, 0, 1], ks=(1, 3))
    assert list(mixed) == ["r@1", "r@3", "mrr", "map", "p@1", "num_groups", "groups_without_positive", "num_rows"]


def test_numpy_inputs_and_integer_ids() -> None:
    gids, scores, labels = one_group([2])
    expected = compute_ranking_metrics(gids, scores, labels)
    assert compute_ranking_metrics(np.zeros(10, dtype=np.int64), np.array(scores), np.array(labels)) == expected


@pytest.mark.parametrize(
    ("group_ids", "scores", "labels", "ks", "message"),
    [
        (["a", "a"], [1.0], [1, 0], (1,), "length mismatch"),
        (["a"], [1.0], [1, 0], (1,), "length mismatch"),
        ([], [], [], (1,), "empty"),
        (["a", "a"], [1.0, 0.0], [1, 2], (1,), "labels must be 0 or 1"),
        (["a", "a"], [1.0, float("nan")], [1, 0], (1,), "finite"),
        (["a", "a"], [1.0, float("inf")], [1, 0], (1,), "finite"),
        (["a", "a"], [[1.0, 0.0], [0.0, 1.0]], [1, 0], (1,), "1-D"),
        (["a", "a"], [1.0, 0.0], [1, 0], (0,), "ks"),
        (["a", "a"], [1.0, 0.0], [1, 0], (), "ks"),
        ([["a"], ["a"]], [1.0, 0.0], [1, 0], (1,), "hashable"),
    ],
)
def test_invalid_input_raises(group_ids, scores, labels, ks, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_ranking_metrics(group_ids, scores, labels, ks=ks)


def test_random_scores_give_chance_level_recall() -> None:
    rng = np.random.default_rng(1234)
    num_groups = 2000
    gids = np.repeat(np.arange(num_groups), 10)
    labels = np.tile([1] + [0] * 9, num_groups)
    result = compute_ranking_metrics(gids, rng.random(gids.size), labels)
    assert result["r10@1"] == pytest.approx(0.1, abs=0.02)
    assert result["r10@5"] == pytest.approx(0.5, abs=0.03)


def test_format_metrics_table_lines_up_systems() -> None:
    table = format_metrics_table({"bm25": {"r10@1": 0.25, "num_groups": 4}, "random": {"r10@1": 0.1}})
    lines = table.splitlines()
    assert lines[0] == "| system | r10@1 | num_groups |"
    assert lines[2] == "| bm25 | 0.2500 | 4 |"
    assert lines[3] == "| random | 0.1000 | - |"


def test_evaluate_module_loads_offline_and_matches_function(tmp_path: Path) -> None:
    """Load via `evaluate.load(path)` in a fresh, offline interpreter outside the repo.

    Running from tmp_path with an empty HF cache proves `mrs_metrics` is resolved from the
    installed project, not from the working directory or a stale module cache.
    """
    gids, scores, labels = random_rows(seed=3, num_groups=50)
    scores = np.asarray(scores, dtype=np.float32).tolist()  # evaluate stores predictions as float32
    (tmp_path / "inputs.json").write_text(json.dumps([gids, scores, labels]))
    script = (
        "import json, evaluate\n"
        "gids, scores, labels = json.load(open('inputs.json'))\n"
        f"metric = evaluate.load({str(METRIC_DIR)!r})\n"
        "out = metric.compute(group_ids=gids, predictions=scores, references=labels)\n"
        "print(json.dumps(out))\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_EVALUATE_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
    }
    env.pop("HF_MODULES_CACHE", None)
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    via_evaluate = json.loads(proc.stdout.strip().splitlines()[-1])
    assert via_evaluate == pytest.approx(compute_ranking_metrics(gids, scores, labels), rel=1e-12)


def test_format_mean_sd_gives_a_spread_only_over_several_values():
    assert format_mean_sd([0.25]) == "0.250"
    assert format_mean_sd([0.2, 0.4]) == "0.300 ± 0.141"  # sample standard deviation, as over seeds
    assert format_mean_sd([1.0, 3.0], digits=1) == "2.0 ± 1.4"
    assert format_mean_sd([-0.02, 0.0], signed=True) == "-0.010 ± 0.014"
    assert format_mean_sd([0.01], signed=True) == "+0.010"
    with pytest.raises(ValueError, match="no values"):
        format_mean_sd([])
