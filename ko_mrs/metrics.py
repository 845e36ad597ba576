"""Response-selection ranking metrics (R_n@k, MRR, MAP, P@1) with BERT-FP / Douban semantics.

The BERT-FP evaluation code (inherited from the Douban evaluation script) cuts the score file
into consecutive blocks of 10 rows, drops blocks without a positive, sorts each block by score and
averages per-block R@k = positives in top k / positives, MRR, MAP and P@1. This module computes
the same quantities with two deliberate differences that make the numbers harder to get wrong:

* rows are grouped by an explicit group id, never by row order, so shuffled, padded or
  differently batched predictions cannot silently mix candidates of two contexts;
* ties are broken pessimistically (negatives before positives) instead of by a random shuffle,
  so the result is deterministic and a constant-score model earns no credit.
"""

from __future__ import annotations

import statistics
from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["compute_ranking_metrics", "format_metrics_table"]


def _factorize(group_ids: Iterable[Hashable]) -> np.ndarray:
    """Map group ids to dense integer codes by equality (hash), so any hashable id type works."""
    index: dict[Hashable, int] = {}
    try:
        codes = [index.setdefault(gid, len(index)) for gid in group_ids]
    except TypeError as err:
        raise ValueError(f"group ids must be hashable: {err}") from err
    return np.asarray(codes, dtype=np.int64)


def _validate(
    group_ids: Sequence[Hashable], scores: Sequence[float], labels: Sequence[int], ks: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn inputs into 1-D arrays and reject anything that would make the metrics meaningless."""
    n_ids, n_scores, n_labels = len(group_ids), len(scores), len(labels)
    if not n_ids == n_scores == n_labels:
        raise ValueError(
            f"length mismatch: {n_ids} group ids, {n_scores} scores, {n_labels} labels; "
            "every candidate row needs exactly one of each"
        )
    if n_ids == 0:
        raise ValueError("no rows to evaluate: group_ids, scores and labels are empty")
    if not ks or any(isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks!r}")

    try:
        score_arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"scores must be real numbers: {err}") from err
    if score_arr.ndim != 1:
        raise ValueError(f"scores must be one score per row (1-D), got shape {score_arr.shape}")
    bad = np.flatnonzero(~np.isfinite(score_arr))
    if bad.size:
        raise ValueError(f"scores must be finite; {bad.size} are NaN/inf (first at row {bad[0]})")

    label_arr = np.asarray(labels)
    if label_arr.ndim != 1:
        raise ValueError(f"labels must be one label per row (1-D), got shape {label_arr.shape}")
    try:
        not_binary = ~np.isin(label_arr, (0, 1))
    except TypeError as err:
        raise ValueError(f"labels must be 0 or 1: {err}") from err
    if not_binary.any():
        first = int(np.flatnonzero(not_binary)[0])
        raise ValueError(f"labels must be 0 or 1; row {first} has {label_arr[first]!r}")

    codes = _factorize(group_ids)
    return codes, score_arr, label_arr.astype(np.int64)


def compute_ranking_metrics(
    group_ids: Sequence[Hashable],
    scores: Sequence[float],
    labels: Sequence[int],
    ks: Sequence[int] = (1, 2, 5),
) -> dict[str, float | int]:
    """Compute response-selection metrics over candidate rows grouped by context.

    Args:
        group_ids: one id per row naming the context (dialogue) the candidate belongs to. Rows are
            grouped by equality of this id, never by position, so any permutation of the rows
            gives identical metrics.
        scores: one finite model score per row; higher means "more likely the true response".
        labels: one label per row, 1 for a correct response and 0 otherwise.
        ks: cut-offs for recall.

    Returns:
        A dict with

        * ``r{n}@{k}`` for each k when every scored group has exactly n candidates (the usual
          R10@1/R10@2/R10@5 of Ubuntu/Douban/E-commerce), otherwise ``r@{k}``. R@k is the number of
          positives in the top k divided by the number of positives in the group (Douban
          semantics, so it stays in [0, 1] with several positives); k larger than the group counts
          the whole group.
        * ``mrr``: mean of 1 / rank of the first positive.
        * ``map``: mean average precision (mean over positives of precision at their rank).
        * ``p@1``: fraction of groups whose top-ranked candidate is positive.
        * ``num_groups``: groups that were scored; ``groups_without_positive``: groups skipped
          because no candidate is positive (Douban test data has such contexts; they are counted,
          never silently dropped); ``num_rows``: all input rows, including skipped groups.

        All means are over scored groups, each group weighted equally.

    Tie rule:
        Among candidates with equal scores, negatives are ranked before positives. This is
        pessimistic (a lower bound on the randomly tie-broken original) and independent of row
        order, so a constant-score model gets R@1 = 0 and MRR = 1/n on 1-in-n groups instead of
        credit for whichever candidate happens to be listed first.

    Raises:
        ValueError: on length mismatch, empty input, non-binary labels, non-finite or non-1-D
            scores, invalid ``ks``, or when no group contains a positive.
    """
    codes, score_arr, label_arr = _validate(group_ids, scores, labels, ks)
    num_rows = int(codes.size)

    # One stable ordering: by group, then score descending, then negatives before positives.
    order = np.lexsort((label_arr, -score_arr, codes))
    g = codes[order]
    y = label_arr[order]

    num_all_groups = int(g[-1]) + 1  # codes are dense, so the last sorted code is the max
    group_size = np.bincount(codes, minlength=num_all_groups)
    num_pos = np.bincount(codes, weights=label_arr, minlength=num_all_groups)
    # Sorted by group code, group c occupies [start[c], start[c] + size[c]).
    start = np.concatenate(([0], np.cumsum(group_size)[:-1]))
    rank = np.arange(num_rows) - start[g] + 1  # 1-based rank within the group

    cum_pos_all = np.cumsum(y)
    pos_before_group = cum_pos_all[start] - y[start]
    cum_pos = cum_pos_all - pos_before_group[g]  # positives at or above this rank in its group

    scored = num_pos > 0
    num_scored = int(scored.sum())
    skipped = num_all_groups - num_scored
    if num_scored == 0:
        raise ValueError(f"no group has a positive label ({skipped} groups, {num_rows} rows)")

    is_pos = y == 1

    def per_group_mean(row_values: np.ndarray) -> float:
        """Sum row contributions per group, then average over scored groups."""
        sums = np.bincount(g, weights=row_values, minlength=num_all_groups)
        return float(sums[scored].mean())

    sizes = group_size[scored]
    prefix = f"r{int(sizes[0])}" if np.all(sizes == sizes[0]) else "r"
    inv_num_pos = np.divide(1.0, num_pos, out=np.zeros_like(num_pos), where=scored)
    pos_weight = np.where(is_pos, inv_num_pos[g], 0.0)

    metrics: dict[str, float | int] = {}
    for k in ks:
        metrics[f"{prefix}@{int(k)}"] = per_group_mean(np.where(rank <= k, pos_weight, 0.0))
    metrics["mrr"] = per_group_mean(np.where(is_pos & (cum_pos == 1), 1.0 / rank, 0.0))
    metrics["map"] = per_group_mean(pos_weight * cum_pos / rank)
    metrics["p@1"] = per_group_mean(np.where(rank == 1, y, 0).astype(np.float64))
    metrics["num_groups"] = num_scored
    metrics["groups_without_positive"] = skipped
    metrics["num_rows"] = num_rows
    return metrics


def format_metrics_table(rows: Mapping[str, Mapping[str, float | int]], digits: int = 4) -> str:
    """Render several systems' metrics as one markdown table (systems as rows, metrics as columns).

    Columns are the union of metric names in first-seen order, so systems evaluated on groups of
    different sizes still line up; a missing value is shown as ``-``. Floats are rounded to
    ``digits`` places so tables in BENCHMARKS diff cleanly.
    """
    if not rows:
        raise ValueError("no systems to tabulate")
    columns: list[str] = []
    for metrics in rows.values():
        columns.extend(name for name in metrics if name not in columns)

    def cell(value: float | int | None) -> str:
        if value is None:
            return "-"
        if isinstance(value, float | np.floating):
            return f"{value:.{digits}f}"
        return str(value)

    lines = [
        "| system | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for system, metrics in rows.items():
        lines.append(f"| {system} | " + " | ".join(cell(metrics.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def format_mean_sd(values: Sequence[float], digits: int = 3, signed: bool = False) -> str:
    """``mean ± sample standard deviation`` over seeds for a benchmark table; one value alone has no spread.
    ``signed`` writes the mean's sign, for differences between rows."""
    if not values:
        raise ValueError("no values to summarise")
    mean = f"{statistics.mean(values):{'+' if signed else ''}.{digits}f}"
    return mean if len(values) == 1 else f"{mean} ± {statistics.stdev(values):.{digits}f}"
