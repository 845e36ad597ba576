"""Same-session judgement: "does this utterance belong to this conversation?", from BERT-FP's URC head.

Post-training trains the utterance relevance classifier (URC) on three classes (``data_collators.URC_KINDS``): an
utterance of another dialogue, another utterance of the same dialogue, and the true next one. That is a session
classifier: P(same session) = 1 - P(other dialogue). :class:`SessionClassifier` loads a post-trained checkpoint
(or one of ``run_fine_tuning.py --task session``) through :class:`modeling_mrs.BertForFineGrainedPostTraining`,
the installed class (no remote code), and lays pairs out as training did (``assemble_pair`` + ``pad_pairs``).

``segment`` splits a stream into sessions greedily, oldest utterance first: each utterance joins the open session
(the latest one only, for concatenated dialogues; any, for interleaved ones) whose last ``context_turns`` turns
give it the lowest P(other dialogue), or opens a new session when even that reaches ``threshold``. A threshold
near 1 opens a session only on a confident "another dialogue"; a lower one splits more readily.

    mrs-session score --model runs/post-trained --input pairs.jsonl --output scored.jsonl
    mrs-session segment --model runs/post-trained --input streams.jsonl --output sessions.jsonl --interleaved
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from safetensors import SafetensorError
from sklearn.metrics import roc_auc_score
from tqdm import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from data_collators import (
    RANDOM,
    SAME_DIALOGUE,
    TRUE_NEXT,
    URC_KINDS,
    assemble_pair,
    pad_pairs,
    special_ids,
    uses_token_types,
)
from ko_mrs.cli_errors import UsageError, check_output_file, load_for_cli, report
from ko_mrs.dialogue_data import write_jsonl
from ko_mrs.preprocessing import DEFAULT_MAX_LENGTH
from ko_mrs.ranking import (
    PAD_TO_MULTIPLE_OF,
    _check_strings,
    _model_source,
    _nonblank_turns,
    _positive_int,
    _read_jsonl,
    _resolve_device,
)
from modeling_mrs import BertForFineGrainedPostTraining

__all__ = ["DEFAULT_CONTEXT_TURNS", "Segmentation", "SessionClassifier", "assign_sessions", "main", "urc_metrics"]

# What each URC class means to a user of the session classifier, by the collators' kind names.
SESSION_LABELS = {RANDOM: "other_dialogue", SAME_DIALOGUE: "same_dialogue", TRUE_NEXT: "next"}
# Post-training's default window: the URC head learned to judge a reply against this many context turns.
DEFAULT_CONTEXT_TURNS = 3

# scorer(contexts, utterance): P(another session) of the utterance with each context (lists of utterance indices).
SessionScorer = Callable[[Sequence[Sequence[int]], int], Sequence[float]]


class Segmentation(NamedTuple):
    """A stream split into sessions.

    ``labels``: each utterance's session, numbered by first appearance (0, 1, ...). ``boundaries``: the indices
    whose session differs from the previous utterance's. ``scores``: each utterance's P(another session) against the
    closest open session (a new one opened where it reached the threshold), ``None`` for the first utterance.
    """

    labels: list[int]
    boundaries: list[int]
    scores: list[float | None]


def assign_sessions(
    num_utterances: int,
    scorer: SessionScorer,
    *,
    threshold: float,
    interleaved: bool = False,
    max_sessions: int | None = None,
    context_turns: int = DEFAULT_CONTEXT_TURNS,
) -> Segmentation:
    """The greedy segmentation of the module docstring, for any scorer (the URC head, a lexical baseline).

    With ``max_sessions`` sessions open, an utterance joins the best one whatever its score.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    if max_sessions is not None and max_sessions < 1:
        raise ValueError(f"max_sessions must be at least 1, got {max_sessions}")
    if context_turns < 1:
        raise ValueError(f"context_turns must be at least 1, got {context_turns}")
    if num_utterances == 0:
        return Segmentation([], [], [])
    sessions: list[list[int]] = [[0]]
    labels, scores = [0], [None]
    for i in range(1, num_utterances):
        candidates = list(range(len(sessions))) if interleaved else [len(sessions) - 1]
        other = scorer([sessions[s][-context_turns:] for s in candidates], i)
        best = int(np.argmin(other))
        scores.append(float(other[best]))
        full = max_sessions is not None and len(sessions) >= max_sessions
        if other[best] < threshold or full:
            session = candidates[best]
        else:
            session = len(sessions)
            sessions.append([])
        sessions[session].append(i)
        labels.append(session)
    boundaries = [i for i in range(1, num_utterances) if labels[i] != labels[i - 1]]
    return Segmentation(labels, boundaries, scores)


def urc_metrics(urc_logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """URC accuracy overall and per class, and the same-session AUC (P(not another dialogue) against class 0).

    The AUC is what a session threshold trades on: 0.5 is chance, whatever the class shares.
    """
    labels = np.asarray(labels)
    predicted = urc_logits.argmax(-1)
    metrics = {"urc_accuracy": float((predicted == labels).mean())}
    for label in range(urc_logits.shape[1]):
        chosen = labels == label
        if chosen.any():
            metrics[f"urc_accuracy_class_{label}"] = float((predicted[chosen] == label).mean())
    same = labels != 0
    if same.any() and not same.all():
        metrics["same_session_auc"] = float(roc_auc_score(same, same_session_probability(urc_logits)))
    return metrics


def same_session_probability(urc_logits: np.ndarray | torch.Tensor) -> np.ndarray:
    """1 - P(another dialogue): class 0 of every URC head (3 classes, or the 2-class NSP-style ablation)."""
    logits = torch.as_tensor(urc_logits).float()
    return 1.0 - logits.softmax(-1)[:, 0].numpy()


class SessionClassifier:
    """Judge whether utterances belong to a conversation with a post-trained URC head (a cross-encoder)."""

    def __init__(
        self,
        model: BertForFineGrainedPostTraining,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_length: int | None = None,
        batch_size: int = 32,
        context_turns: int | None = None,
    ) -> None:
        """``max_length`` and ``context_turns`` default to what ``--task session`` trained with, else
        ``DEFAULT_MAX_LENGTH`` and post-training's window of 3."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if context_turns is None:
            context_turns = getattr(model.config, "mrs_max_turns", None) or DEFAULT_CONTEXT_TURNS
        if context_turns < 1:
            raise ValueError(f"context_turns must be at least 1, got {context_turns}")
        if not model.uses_urc:
            raise ValueError("the model was post-trained without URC (urc_loss_weight 0): its URC head is untrained")
        positions = model.config.max_position_embeddings
        if max_length is None:
            max_length = min(getattr(model.config, "mrs_max_length", None) or DEFAULT_MAX_LENGTH, positions)
        elif max_length > positions:
            raise ValueError(f"max_length {max_length} exceeds the model's {positions} position embeddings")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.context_turns = context_turns
        self.labels = tuple(SESSION_LABELS[kind] for kind in URC_KINDS[model.config.num_urc_labels])
        self.special = special_ids(tokenizer)
        self.use_token_types = uses_token_types(tokenizer)

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str,
        *,
        device: str | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        context_turns: int | None = None,
        **hub_kwargs: Any,
    ) -> SessionClassifier:
        """Load a post-trained checkpoint (local directory or Hub repo id) with its URC head.

        A checkpoint without one (a plain BERT, a fine-tuned response selector) is refused: the head would be random.
        ``hub_kwargs`` (``revision``, ``token``, ``cache_dir``, ...) go to the tokenizer and the model.
        """
        source, tried = _model_source(model_name_or_path)
        resolved_device = _resolve_device(device)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **hub_kwargs)
            model, loading_info = BertForFineGrainedPostTraining.from_pretrained(
                source, output_loading_info=True, **hub_kwargs
            )
        except (OSError, ValueError, SafetensorError) as err:
            raise OSError(f"could not load a model from the {tried}: {err}") from err
        missing = sorted(
            key for key in loading_info["missing_keys"] if key.startswith(("urc_classifier.", "bert.pooler."))
        )
        if missing:
            raise ValueError(
                f"{model_name_or_path} has no trained URC head: {', '.join(missing)} would be randomly initialised "
                "(post-train it with mrs-post-train, or train one with mrs-fine-tune --task session)"
            )
        return cls(
            model.to(resolved_device),
            tokenizer,
            max_length=max_length,
            batch_size=batch_size,
            context_turns=context_turns,
        )

    @property
    def device(self) -> torch.device:
        return self.model.device

    def predict(self, context: Sequence[str], utterance: str) -> dict[str, float]:
        """P of each URC class for ``utterance`` after ``context`` (oldest turn first): ``other_dialogue``,
        ``same_dialogue`` (another utterance of it) and ``next``; they sum to one."""
        _check_strings("utterance", [utterance])
        return self.probabilities(context, [utterance])[0]

    def probabilities(self, context: Sequence[str], utterances: Sequence[str]) -> list[dict[str, float]]:
        """:meth:`predict` for each of ``utterances`` (one batched pass), in utterance order."""
        return [dict(zip(self.labels, row, strict=True)) for row in self._group(context, utterances).tolist()]

    def same_session(self, context: Sequence[str], utterances: Sequence[str]) -> list[float]:
        """P(same session) = 1 - P(other dialogue) of each utterance with ``context``, in utterance order."""
        return (1.0 - self._group(context, utterances)[:, 0]).tolist()

    def _group(self, context: Sequence[str], utterances: Sequence[str]) -> np.ndarray:
        turns = _check_context(context)
        _check_utterances(utterances)
        ids = self._encode([*turns, *utterances])
        context_indices = list(range(len(turns)))
        return self._probabilities(ids, [(context_indices, len(turns) + i) for i in range(len(utterances))])

    def segment(
        self,
        utterances: Sequence[str],
        threshold: float = 0.5,
        *,
        interleaved: bool = False,
        max_sessions: int | None = None,
    ) -> Segmentation:
        """Split a stream into sessions (see the module docstring); every utterance gets a session label.

        ``interleaved=False``: the stream is dialogues one after another, so a session never reopens;
        ``interleaved=True``: an utterance may join any session opened so far.
        """
        scorer = self.stream_scorer(utterances)
        return assign_sessions(
            len(utterances),
            scorer,
            threshold=threshold,
            interleaved=interleaved,
            max_sessions=max_sessions,
            context_turns=self.context_turns,
        )

    def stream_scorer(self, utterances: Sequence[str]) -> SessionScorer:
        """P(another session) of an utterance of the stream with sessions of it, given as utterance indices;
        each utterance is tokenised once. :meth:`segment` and the evaluation (``ko_mrs.session_eval``) use it."""
        _check_stream(utterances)
        ids = self._encode(utterances)

        def scorer(contexts: Sequence[Sequence[int]], i: int) -> list[float]:
            return self._probabilities(ids, [(context, i) for context in contexts])[:, 0].tolist()

        return scorer

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(
            list(texts), add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False
        )["input_ids"]

    @torch.inference_mode()
    def _probabilities(self, ids: Sequence[Sequence[int]], pairs: Sequence[tuple[Sequence[int], int]]) -> np.ndarray:
        """Softmax of the URC logits, ``[len(pairs), classes]``; a pair is (context indices, utterance index)."""
        assembled = [
            assemble_pair(
                [ids[j] for j in context],
                ids[utterance],
                cls_id=self.special.cls,
                sep_id=self.special.sep,
                eot_id=self.special.eot,
                max_length=self.max_length,
            )
            for context, utterance in pairs
        ]
        out = []
        for start in range(0, len(assembled), self.batch_size):
            batch = pad_pairs(
                assembled[start : start + self.batch_size],
                self.special.pad,
                self.max_length,
                PAD_TO_MULTIPLE_OF,
                self.use_token_types,
            )
            tensors = {key: torch.from_numpy(value).to(self.device) for key, value in batch.items()}
            out.append(self.model(**tensors).urc_logits.float().softmax(-1).cpu())
        return torch.cat(out).numpy()


def _check_utterances(utterances: Any) -> None:
    _check_strings("utterances", utterances)
    if not utterances:
        raise ValueError("utterances must contain at least one utterance")


def _check_stream(utterances: Any) -> None:
    """A stream to segment: every utterance gets a session, so none may be blank (nothing is dropped)."""
    _check_utterances(utterances)
    for i, text in enumerate(utterances):
        if not text.strip():
            raise ValueError(f"utterances[{i}] is blank: every utterance of a stream gets a session")


def _check_context(context: Any) -> list[str]:
    """The non-blank context turns (blank ones would only add an empty turn); at least one."""
    _check_strings("context", context)
    return _nonblank_turns(context)


# ----------------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrs-session",
        description="Judge whether utterances belong to one conversation with a post-trained BERT-FP URC head.",
        epilog=(
            "examples:\n"
            "  mrs-session score --model runs/post-trained --input pairs.jsonl --output scored.jsonl\n"
            '      (each line {"context": [...], "utterances": [...]}; adds "same_session" and "probabilities")\n'
            "  mrs-session segment --model runs/post-trained --input streams.jsonl --output sessions.jsonl\n"
            '      (each line {"utterances": [...]}; adds "sessions", "boundaries" and "scores")'
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="P(same session) of utterances with a context")
    segment = commands.add_parser("segment", help="split streams of utterances into sessions")
    for sub in (score, segment):
        sub.add_argument("--model", required=True, help="post-trained model directory or Hub repo id")
        sub.add_argument("--input", type=Path, required=True, help="JSONL file, one item per line")
        sub.add_argument("--output", type=Path, required=True, help="JSONL file: each input line plus the results")
        sub.add_argument("--device", help="torch device (default: cuda, else mps, else cpu)")
        sub.add_argument("--batch_size", type=_positive_int, default=32, help="pairs per forward pass (default: 32)")
        sub.add_argument("--max_length", type=_positive_int, help="tokens per pair (default: the model's)")
        sub.add_argument(
            "--context_turns",
            type=_positive_int,
            help=f"latest turns of a session the head sees (default: the model's, else {DEFAULT_CONTEXT_TURNS})",
        )
    segment.add_argument(
        "--threshold", type=_probability, default=0.5, help="P(other dialogue) at which a new session opens"
    )
    segment.add_argument("--interleaved", action="store_true", help="an utterance may join any earlier session")
    segment.add_argument("--max_sessions", type=_positive_int, help="never open more sessions than this")
    return parser


def _probability(value: str) -> float:
    number = float(value)
    if not 0.0 < number < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {number}")
    return number


def main(argv: list[str] | None = None) -> int:
    """``mrs-session``: 0 on success, 2 (with a one-line message on stderr) on a usage or input error."""
    args = build_parser().parse_args(argv)
    try:
        check_output_file(args.output, "--output")
        # Check every line before loading the model, so a typo on the last line does not cost a whole run.
        check = functools.partial(_check_item, command=args.command)
        count = sum(1 for _ in _read_jsonl(args.input, check))
        if not count:
            raise UsageError(f"{args.input}: holds no items (one JSON object per line is expected)")
        classifier = _load(args)
        items = tqdm(_read_jsonl(args.input, check), total=count, desc="Judging", unit="item")
        write_jsonl((_answer(classifier, item, args) for item in items), args.output)
    except UsageError as err:
        return report("mrs-session", err)
    print(f"{args.command}: {count} items into {args.output}", file=sys.stderr)
    return 0


def _load(args: argparse.Namespace) -> SessionClassifier:
    return load_for_cli(
        SessionClassifier.from_pretrained,
        args.model,
        device=args.device,
        max_length=args.max_length,
        batch_size=args.batch_size,
        context_turns=args.context_turns,
    )


def _answer(classifier: SessionClassifier, item: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "score":
        probabilities = classifier.probabilities(item["context"], item["utterances"])
        same = [1.0 - p["other_dialogue"] for p in probabilities]
        return {**item, "same_session": same, "probabilities": probabilities}
    result = classifier.segment(
        item["utterances"], args.threshold, interleaved=args.interleaved, max_sessions=args.max_sessions
    )
    return {**item, "sessions": result.labels, "boundaries": result.boundaries, "scores": result.scores}


def _check_item(item: Mapping[str, Any], command: str) -> None:
    fields = ("context", "utterances") if command == "score" else ("utterances",)
    for name in fields:
        if name not in item:
            raise ValueError(f"missing field '{name}'")
    if command == "score":
        _check_context(item["context"])
        _check_utterances(item["utterances"])
    else:
        _check_stream(item["utterances"])


if __name__ == "__main__":
    sys.exit(main())
