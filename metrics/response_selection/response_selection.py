"""`evaluate` wrapper around `mrs_metrics.compute_ranking_metrics` (R_n@k, MRR, MAP, P@1).

Kept as a thin adapter so the Trainer, the CLI and `evaluate.load` all report the same numbers from
one implementation. `mrs_metrics` is imported as an installed module (`pip install -e .` exposes it
via the project's `py-modules`); `evaluate` copies only this script into its module cache and checks
that its imports are installed, so no path manipulation is needed or wanted here.
"""

import datasets
import evaluate

from ko_mrs.metrics import compute_ranking_metrics

_DESCRIPTION = """\
Ranking metrics for multi-turn response selection with the semantics of the BERT-FP / Douban
evaluation scripts: for each context (group of candidate responses) the candidates are sorted by
score and R_n@k (positives in the top k divided by positives in the group), MRR, MAP and P@1 are
averaged over groups. Differences from the original script: rows are grouped by an explicit
`group_ids` column instead of consecutive blocks of 10 rows, and ties are broken pessimistically
(negatives before positives) instead of randomly. Groups without a positive are skipped and
reported in `groups_without_positive`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): one model score per candidate row, higher is better.
    references (`list` of `int`): 1 if the candidate is a correct response, else 0.
    group_ids (`list` of `str`): id of the context each candidate belongs to.
    ks (`tuple` of `int`, optional): recall cut-offs, default (1, 2, 5).
Returns:
    `r{n}@{k}` for each k when every scored group has n candidates (else `r@{k}`), `mrr`, `map`,
    `p@1`, `num_groups`, `groups_without_positive`, `num_rows`.
Examples:
    >>> metric = evaluate.load("metrics/response_selection")
    >>> metric.compute(group_ids=["a", "a", "b", "b"], predictions=[0.9, 0.1, 0.2, 0.8],
    ...                references=[1, 0, 1, 0])["r2@1"]
    0.5
"""

_CITATION = """\
@inproceedings{han-etal-2021-fine,
    title = "Fine-grained Post-training for Improving Retrieval-based Dialogue Systems",
    author = "Han, Janghoon and Hong, Taesuk and Kim, Byoungjae and Ko, Youngjoong and Seo, Jungyun",
    booktitle = "Proceedings of the 2021 Conference of the North American Chapter of the Association
                 for Computational Linguistics: Human Language Technologies",
    year = "2021",
    publisher = "Association for Computational Linguistics",
    pages = "1549--1558",
    url = "https://aclanthology.org/2021.naacl-main.122",
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ResponseSelection(evaluate.Metric):
    """Response-selection ranking metrics grouped by context id."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "group_ids": datasets.Value("string"),
                    "predictions": datasets.Value("float32"),
                    "references": datasets.Value("int32"),
                }
            ),
            codebase_urls=["https://github.com/hanjanghoon/BERT_FP"],
            reference_urls=["https://aclanthology.org/2021.naacl-main.122"],
        )

    def _compute(
        self,
        predictions: list[float],
        references: list[int],
        group_ids: list[str],
        ks: tuple[int, ...] = (1, 2, 5),
    ) -> dict[str, float | int]:
        return compute_ranking_metrics(group_ids, predictions, references, ks=ks)
