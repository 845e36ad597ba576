"""Rank candidate responses to a dialogue context with a fine-tuned BERT-FP response selector.

The model is the 2-class ``AutoModelForSequenceClassification`` that fine-tuning saves (label "next": the
candidate is the true next utterance). Pairs are assembled and padded by ``data_collators`` and scored by
``ko_mrs.scoring``, the code fine-tuning and evaluation use, so a score here is the score the model was trained
and evaluated on: ``sigmoid`` of the log-odds of "next".
``ResponseSelector.rank`` returns what sentence-transformers' ``CrossEncoder.rank`` returns, so code written
against one works with the other.

    mrs-rank --model runs/fine-tune --context "주말에 뭐 해?" "등산 가려고" --candidates "어디로?" "배고파"
    mrs-rank --model runs/fine-tune --input groups.jsonl --output ranked.jsonl
    mrs-rank --model runs/speakers --context "점심 뭐 먹지?" "난 국수" "나도" --speakers A B C --reply_speaker A \
        --candidates "그럼 국숫집 가자" "배불러"

Speakers (a model fine-tuned with ``--speaker_encoding``): ``speakers`` names who said each context turn and
``reply_speaker`` who says the candidates; names are free, only who is who relative to the reply matters
(:mod:`ko_mrs.speakers`). Without them, a two-party alternation is assumed: the reply's speaker said every
second turn back from the reply, the other party the turns in between.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError
from tqdm import tqdm
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import cached_file

from data_collators import Markers, assemble_pair, pad_pairs, special_ids, uses_token_types
from ko_mrs.backends import BACKENDS, ExportedClassifier, check_backend, exported_file
from ko_mrs.cli_errors import UsageError, check_output_file, load_for_cli, report
from ko_mrs.dialogue_data import DialogueFormatError, iter_json_objects, write_jsonl
from ko_mrs.preprocessing import DEFAULT_MAX_LENGTH
from ko_mrs.scoring import next_label_index, next_scores
from ko_mrs.speakers import DEFAULT_MAX_SPEAKERS, UtteranceFeatures, relative_speakers
from modeling_mrs import BertForResponseSelection, BertForSpeakerAwareSelection

__all__ = ["ResponseSelector", "main"]

# `rank_batch` scores consecutive items together until they hold this many batches of pairs: enough pairs for
# sorting by length to remove most padding, few enough to keep memory flat over a long JSONL file.
BATCHES_PER_CHUNK = 16
PAD_TO_MULTIPLE_OF = 8  # as the collators pad

Pair = tuple[Sequence[int], ...]  # (input_ids, token_type_ids, *the features' embedding rows)
# A group to score: context turns, candidates, and the context's speakers relative to the reply (None: alternation).
Group = tuple[list[str], list[str], list[int] | None]
# Model classes ko-mrs loads by the name in config.architectures (a plain AutoModel would replace their heads).
OWN_CLASSES = {cls.__name__: cls for cls in (BertForResponseSelection, BertForSpeakerAwareSelection)}
logger = logging.getLogger(__name__)
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class ResponseSelector:
    """Score and rank candidate responses to a dialogue context (a cross-encoder: one forward pass per pair)."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_length: int | None = None,
        batch_size: int = 32,
        autocast: str | None = None,
    ) -> None:
        """Wrap an in-memory model and tokenizer; ``max_length`` defaults to the one fine-tuning used.

        Fine-tuning records its ``max_length`` as ``config.mrs_max_length``; scoring with a different one
        would truncate contexts differently from what the model learned on. ``autocast`` ("bf16" or "fp16") runs
        a torch model's forward under ``torch.autocast``: fp32 weights, half-precision matmuls (for GPUs).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if autocast is not None and autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"unknown autocast {autocast!r}: use one of {', '.join(map(repr, AUTOCAST_DTYPES))}")
        if autocast is not None and isinstance(model, ExportedClassifier):
            raise ValueError(f"autocast applies to the torch backend, not {model.backend!r}")
        self.autocast = autocast
        positions = getattr(model.config, "max_position_embeddings", None)
        if max_length is None:
            max_length = getattr(model.config, "mrs_max_length", None) or DEFAULT_MAX_LENGTH
            max_length = min(max_length, positions) if positions else max_length
        elif positions and max_length > positions:
            raise ValueError(f"max_length {max_length} exceeds the model's {positions} position embeddings")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.next_index = next_label_index(model.config)
        self.special = special_ids(tokenizer)
        # the collators' rule, so a pair is scored with the token types it was trained with
        self.use_token_types = uses_token_types(tokenizer)
        # the speaker / turn-distance features fine-tuning recorded in the config, laid out as it laid them out
        self.features = UtteranceFeatures.from_config(model.config)
        self.markers = Markers.from_tokenizer(tokenizer, self.features)
        # the latest turns fine-tuning kept (--max_turns), so a long context is cut where training cut it
        self.max_turns: int | None = getattr(model.config, "mrs_max_turns", None)
        self._said_alternation = False

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str,
        *,
        device: str | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        torch_dtype: torch.dtype | str | None = None,
        backend: str = "torch",
        quantized: bool = False,
        file_name: str | None = None,
        autocast: str | None = None,
        **hub_kwargs: Any,
    ) -> ResponseSelector:
        """Load a fine-tuned selector from a local directory or a Hub repo id.

        ``hub_kwargs`` (``revision``, ``token``, ``cache_dir``, ``local_files_only``, ...) go to both the tokenizer
        and the model. ``device`` defaults to cuda, else mps, else cpu. A checkpoint without a trained
        classification head (e.g. a post-trained one) is refused: its scores would be random.

        ``backend="onnx"`` (ONNX Runtime) or ``"openvino"`` runs the graph ``mrs-export`` wrote, on the CPU:
        ``onnx/model.onnx``, ``onnx/model_qint8.onnx`` with ``quantized=True``, or ``onnx/<file_name>``.
        """
        check_backend(backend)
        if backend == "torch" and (quantized or file_name):
            raise ValueError("quantized and file_name choose an exported graph: use backend='onnx' or 'openvino'")
        if backend != "torch" and (autocast is not None or torch_dtype is not None):
            raise ValueError(f"autocast and torch_dtype apply to the torch backend, not {backend!r}")
        source, tried = _model_source(model_name_or_path)
        resolved_device = _resolve_device(device if backend == "torch" else device or "cpu")
        if backend != "torch" and resolved_device.type != "cpu":
            raise ValueError(f"backend={backend!r} runs on the CPU here; use backend='torch' for {resolved_device}")
        model_kwargs = dict(hub_kwargs, output_loading_info=True)
        if torch_dtype is not None:
            model_kwargs["dtype"] = torch_dtype
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **hub_kwargs)
            config = AutoConfig.from_pretrained(source, **hub_kwargs)
            if backend != "torch":
                graph = _exported_graph(source, exported_file(quantized, file_name), hub_kwargs)
                model = ExportedClassifier(graph, config, backend)
                return cls(model, tokenizer, max_length=max_length, batch_size=batch_size)
            # ko-mrs' own selectors by their class: as a BertForSequenceClassification the mean-pooling one would get
            # a random pooler, the speaker-aware one would lose its speaker embeddings
            own = [OWN_CLASSES[name] for name in config.architectures or [] if name in OWN_CLASSES]
            model_class = own[0] if own else AutoModelForSequenceClassification
            model, loading_info = model_class.from_pretrained(source, config=config, **model_kwargs)
        except (OSError, ValueError, SafetensorError) as err:  # SafetensorError: a truncated or corrupt weights file
            raise OSError(f"could not load a model from the {tried}: {err}") from err
        if loading_info["missing_keys"]:
            missing = ", ".join(sorted(loading_info["missing_keys"]))
            raise ValueError(
                f"{model_name_or_path} is not a fine-tuned response selector: {missing} would be randomly "
                "initialised (fine-tune it with mrs-fine-tune first)"
            )
        return cls(
            model.to(resolved_device), tokenizer, max_length=max_length, batch_size=batch_size, autocast=autocast
        )

    @property
    def device(self) -> torch.device:
        return self.model.device

    def score(
        self,
        context: Sequence[str],
        candidates: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        speakers: Sequence[str] | None = None,
        reply_speaker: str | None = None,
    ) -> list[float]:
        """Probability that each candidate is the next utterance after ``context`` (oldest turn first).

        Scores are in candidate order. Blank context turns are dropped (and their speakers): they would only add an
        empty turn. ``speakers`` (one per context turn) and ``reply_speaker`` go together; without them two parties
        are assumed to alternate (see the module docstring).
        """
        group = _check_inputs(context, candidates, speakers, reply_speaker, self.features.max_speakers)
        return self._score_groups([group], self._batch_size(batch_size), show_progress_bar)[0]

    def predict(
        self,
        pairs: Sequence[tuple[Sequence[str] | str, str]] | tuple[Sequence[str] | str, str],
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
    ) -> np.ndarray | torch.Tensor | list[float] | float:
        """P(next) of each ``(context, candidate)`` pair, in pair order: ``CrossEncoder.predict``'s signature.

        A context is its turns, oldest first, or one string (a single turn). One pair, not in a list, gives one
        score. ``convert_to_tensor`` (a float32 tensor) wins over ``convert_to_numpy`` (a float32 array); with
        neither, a list of floats. Pairs of all contexts share length-sorted batches.
        """
        single = isinstance(pairs, tuple) and len(pairs) == 2 and isinstance(pairs[1], str)
        groups = [_pair_inputs(index, pair) for index, pair in enumerate([pairs] if single else pairs)]
        scores = [group[0] for group in self._score_groups(groups, self._batch_size(batch_size), show_progress_bar)]
        if convert_to_tensor:
            result: Any = torch.tensor(scores, dtype=torch.float32)
        elif convert_to_numpy:
            result = np.asarray(scores, dtype=np.float32)
        else:
            result = scores
        return result[0] if single else result

    def _batch_size(self, batch_size: int | None) -> int:
        """The per-call batch size, else the selector's; 0 or less is an error, not "use the default"."""
        if batch_size is None:
            return self.batch_size
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        return batch_size

    def rank(
        self,
        context: Sequence[str],
        candidates: Sequence[str],
        top_k: int | None = None,
        return_documents: bool = False,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        *,
        speakers: Sequence[str] | None = None,
        reply_speaker: str | None = None,
    ) -> list[dict[str, Any]]:
        """``[{"corpus_id": i, "score": p, ("text": candidates[i])}, ...]``, best first, like ``CrossEncoder.rank``.

        Ties keep candidate order (lower ``corpus_id`` first); ``top_k`` keeps the best ``top_k``. ``speakers`` and
        ``reply_speaker`` as in :meth:`score`.
        """
        _check_top_k(top_k)
        scores = self.score(
            context,
            candidates,
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            speakers=speakers,
            reply_speaker=reply_speaker,
        )
        return _ranking(scores, candidates, top_k, return_documents)

    def rank_batch(
        self,
        items: Iterable[Mapping[str, Any]],
        *,
        top_k: int | None = None,
        return_documents: bool = False,
        batch_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Rank many ``{"context": [...], "candidates": [...], "speakers"?, "reply_speaker"?, ...}`` items lazily.

        Each item comes back with all its keys plus ``"ranking"`` (as ``rank`` returns it): the JSONL batch
        format. Pairs of consecutive items share batches, so groups of a few candidates still fill a GPU.
        """
        _check_top_k(top_k)
        batch_size = self._batch_size(batch_size)
        chunk: list[tuple[Mapping[str, Any], Group]] = []
        num_pairs = 0
        for index, item in enumerate(items):
            try:
                group = _item_inputs(item, self.features.max_speakers)
            except (TypeError, ValueError) as err:
                raise type(err)(f"item {index}: {err}") from err
            chunk.append((item, group))
            num_pairs += len(group[1])
            if num_pairs >= batch_size * BATCHES_PER_CHUNK:
                yield from self._rank_chunk(chunk, top_k, return_documents, batch_size)
                chunk, num_pairs = [], 0
        if chunk:
            yield from self._rank_chunk(chunk, top_k, return_documents, batch_size)

    def _rank_chunk(
        self,
        chunk: Sequence[tuple[Mapping[str, Any], Group]],
        top_k: int | None,
        return_documents: bool,
        batch_size: int,
    ) -> Iterator[dict[str, Any]]:
        groups = [group for _, group in chunk]
        for (item, group), scores in zip(chunk, self._score_groups(groups, batch_size, False), strict=True):
            yield {**item, "ranking": _ranking(scores, group[1], top_k, return_documents)}

    def _score_groups(self, groups: Sequence[Group], batch_size: int, show_progress_bar: bool) -> list[list[float]]:
        """Scores of every group's candidates; each distinct text is tokenised once, however often it occurs."""
        if self.features.uses_speakers and not self._said_alternation and any(g[2] is None for g in groups):
            logger.warning("no speakers given: assuming two parties alternate, the reply's speaker two turns back")
            self._said_alternation = True
        texts = list(dict.fromkeys(text for context, candidates, _ in groups for text in (*context, *candidates)))
        encoded = self.tokenizer(
            texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False
        )["input_ids"]
        ids = dict(zip(texts, encoded, strict=True))
        pairs: list[Pair] = []
        for context, candidates, speakers in groups:
            if self.max_turns is not None:
                context, speakers = context[-self.max_turns :], speakers and speakers[-self.max_turns :]
            context_ids = [ids[text] for text in context]
            pairs.extend(
                assemble_pair(
                    context_ids,
                    ids[candidate],
                    cls_id=self.special.cls,
                    sep_id=self.special.sep,
                    eot_id=self.special.eot,
                    max_length=self.max_length,
                    speakers=speakers,
                    markers=self.markers,
                )
                for candidate in candidates
            )
        scores = self._score_pairs(pairs, batch_size, show_progress_bar)
        out, start = [], 0
        for _, candidates, _ in groups:
            out.append(scores[start : start + len(candidates)])
            start += len(candidates)
        return out

    @torch.inference_mode()
    def _score_pairs(self, pairs: Sequence[Pair], batch_size: int, show_progress_bar: bool) -> list[float]:
        """Scores in input order, each distinct pair computed once.

        Once, because padding moves the last bits of a score: a repeated candidate scored in two batches could
        land either side of itself, and its tie would no longer go to the lower ``corpus_id``. Batches hold pairs
        of similar length (little padding), longest first so running out of memory shows at once.
        """
        keys = [tuple(map(tuple, pair)) for pair in pairs]
        unique = sorted(dict.fromkeys(keys), key=lambda key: len(key[0]), reverse=True)
        scores: dict[Pair, float] = {}
        for start in tqdm(
            range(0, len(unique), batch_size), desc="Scoring", unit="batch", disable=not show_progress_bar
        ):
            batch = unique[start : start + batch_size]
            scores.update(zip(batch, self._next_probabilities(batch), strict=True))
        return [scores[key] for key in keys]

    def _next_probabilities(self, pairs: Sequence[Pair]) -> list[float]:
        batch = pad_pairs(
            pairs,
            self.special.pad,
            self.max_length,
            PAD_TO_MULTIPLE_OF,
            self.use_token_types,
            self.features.embedding_inputs,
        )
        tensors = {key: torch.from_numpy(value).to(self.device) for key, value in batch.items()}
        dtype = AUTOCAST_DTYPES.get(self.autocast)
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            log_odds = next_scores(self.model, tensors, self.next_index)
        return torch.sigmoid(log_odds.float()).tolist()


def _model_source(model_name_or_path: str) -> tuple[str, str]:
    """What to load (a local path, else a Hub repo id) and how to name it in an error."""
    local = Path(model_name_or_path).expanduser()
    if local.exists():
        return str(local), f"local path {local}"
    if _is_hub_id(model_name_or_path):
        return model_name_or_path, f"Hub repo {model_name_or_path!r} (there is no local path of that name)"
    raise FileNotFoundError(f"model not found: {model_name_or_path} does not exist and is not a Hub repo id")


def _is_hub_id(name: str) -> bool:
    """A valid repo id whose namespace is not a local folder (``runs/typo`` is a missing path, not a repo)."""
    if Path(name).parts and Path(Path(name).parts[0]).is_dir():
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _exported_graph(source: str, file_name: str, hub_kwargs: Mapping[str, Any]) -> str:
    """Local path of ``file_name`` in the model folder or Hub repo; a missing one says how to make it."""
    try:
        path = cached_file(source, file_name, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
    except OSError as err:
        raise OSError(f"cannot fetch {file_name}: {err}") from err
    if path is None:
        raise FileNotFoundError(f"{source} has no {file_name}: export it with `mrs-export {source} --format onnx`")
    return path


def _resolve_device(device: str | None) -> torch.device:
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}") from err


def _check_strings(field: str, values: Any) -> None:
    # A bare string is a Sequence too, and would silently become one turn per character.
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise TypeError(f"{field} must be a list of strings, got {type(values).__name__}")
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise TypeError(f"{field}[{i}] must be a string, got {type(value).__name__}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{field}[{i}] is not valid Unicode (it holds a lone surrogate)") from None


def _check_inputs(
    context: Any,
    candidates: Any,
    speakers: Any = None,
    reply_speaker: Any = None,
    max_speakers: int = DEFAULT_MAX_SPEAKERS,
) -> Group:
    """Validate one group; return the non-blank context turns, the candidates, and the turns' relative speakers."""
    _check_strings("context", context)
    _check_strings("candidates", candidates)
    keep = [i for i, turn in enumerate(context) if turn.strip()]
    if not keep:
        raise ValueError("context must contain at least one non-empty utterance")
    if not candidates:
        raise ValueError("candidates must contain at least one response")
    relative = None
    if speakers is not None or reply_speaker is not None:
        if speakers is None or reply_speaker is None:
            raise ValueError(
                "speakers and reply_speaker go together: give both (or neither, for two alternating parties)"
            )
        _check_strings("speakers", speakers)
        if len(speakers) != len(context):
            raise ValueError(f"speakers has {len(speakers)} entries for {len(context)} context turns (one per turn)")
        if not isinstance(reply_speaker, str):
            raise TypeError(f"reply_speaker must be a string, got {type(reply_speaker).__name__}")
        relative = relative_speakers([speakers[i] for i in keep], reply_speaker, max_speakers)
    return [context[i] for i in keep], list(candidates), relative


def _nonblank_turns(context: Sequence[str]) -> list[str]:
    turns = [turn for turn in context if turn.strip()]
    if not turns:
        raise ValueError("context must contain at least one non-empty utterance")
    return turns


def _pair_inputs(index: int, pair: Any) -> Group:
    """One ``(context, candidate)`` pair of ``predict`` as a group of one candidate."""
    if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
        raise TypeError(f"pairs[{index}] must be a (context, candidate) pair, got {type(pair).__name__}")
    context, candidate = pair
    if not isinstance(candidate, str):
        raise TypeError(f"pairs[{index}]: the candidate must be a string, got {type(candidate).__name__}")
    try:
        return _check_inputs([context] if isinstance(context, str) else context, [candidate])
    except (TypeError, ValueError) as err:
        raise type(err)(f"pairs[{index}]: {err}") from None


def _item_inputs(item: Any, max_speakers: int = DEFAULT_MAX_SPEAKERS) -> Group:
    if not isinstance(item, Mapping):
        raise TypeError(f"expected an object with 'context' and 'candidates', got {type(item).__name__}")
    for field in ("context", "candidates"):
        if field not in item:
            raise ValueError(f"missing field '{field}'")
    return _check_inputs(
        item["context"], item["candidates"], item.get("speakers"), item.get("reply_speaker"), max_speakers
    )


def _check_top_k(top_k: int | None) -> None:
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")


def _ranking(
    scores: Sequence[float], candidates: Sequence[str], top_k: int | None, return_documents: bool
) -> list[dict[str, Any]]:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable: ties keep the lower corpus_id first
    ranking: list[dict[str, Any]] = []
    for i in order[:top_k]:
        entry: dict[str, Any] = {"corpus_id": i, "score": scores[i]}
        if return_documents:
            entry["text"] = candidates[i]
        ranking.append(entry)
    return ranking


# ----------------------------------------------------------------------------------------------------------- CLI


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrs-rank",
        description="Rank candidate responses to a dialogue context with a fine-tuned response selector.",
        epilog=(
            "examples:\n"
            '  mrs-rank --model runs/fine-tune --context "주말에 뭐 해?" "등산 가려고" \\\n'
            '           --candidates "어디로?" "배고파" --top_k 1\n'
            "  mrs-rank --model runs/fine-tune --input groups.jsonl --output ranked.jsonl"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="fine-tuned model directory or Hub repo id")
    single = parser.add_argument_group("one dialogue (prints a table)")
    single.add_argument("--context", nargs="*", metavar="UTTERANCE", help="context turns, oldest first")
    single.add_argument("--candidates", nargs="*", metavar="RESPONSE", help="candidate responses to rank")
    single.add_argument(
        "--speakers", nargs="*", metavar="NAME", help="who said each context turn (default: two alternating parties)"
    )
    single.add_argument("--reply_speaker", metavar="NAME", help="who says the reply (required with --speakers)")
    batch = parser.add_argument_group("many dialogues (JSONL)")
    batch.add_argument(
        "--input",
        type=Path,
        help='JSONL file, one {"context": [...], "candidates": [...], "speakers"?: [...], "reply_speaker"?, "id": ...} '
        "per line",
    )
    batch.add_argument("--output", type=Path, help='JSONL file: each input line plus "ranking" (written atomically)')
    batch.add_argument("--return_documents", action="store_true", help='add each candidate\'s "text" to "ranking"')
    parser.add_argument("--top_k", type=_positive_int, help="keep only the best K candidates")
    parser.add_argument("--device", help="torch device (default: cuda, else mps, else cpu)")
    parser.add_argument("--batch_size", type=_positive_int, default=32, help="pairs per forward pass (default: 32)")
    parser.add_argument("--max_length", type=_positive_int, help="tokens per pair (default: the fine-tuning value)")
    parser.add_argument("--backend", choices=BACKENDS, default="torch", help="onnx/openvino: a graph from mrs-export")
    parser.add_argument("--quantized", action="store_true", help="with --backend onnx/openvino: the int8 graph")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``mrs-rank``: 0 on success, 2 (with a one-line message on stderr) on a usage or input error."""
    args = build_parser().parse_args(argv)
    try:
        if args.input is not None or args.output is not None:
            _rank_jsonl_files(args)
        else:
            _rank_one(args)
    except UsageError as err:
        return report("mrs-rank", err)
    return 0


def _load(args: argparse.Namespace) -> ResponseSelector:
    return load_for_cli(
        ResponseSelector.from_pretrained,
        args.model,
        device=args.device,
        max_length=args.max_length,
        batch_size=args.batch_size,
        backend=args.backend,
        quantized=args.quantized,
    )


def _rank_one(args: argparse.Namespace) -> None:
    if args.context is None and args.candidates is None:
        raise UsageError("nothing to rank: give --context and --candidates, or --input and --output")
    try:
        _check_inputs(args.context or [], args.candidates or [], args.speakers, args.reply_speaker)
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from err
    ranking = _load(args).rank(
        args.context,
        args.candidates,
        top_k=args.top_k,
        return_documents=True,
        speakers=args.speakers,
        reply_speaker=args.reply_speaker,
    )
    print(_format_table(ranking))


def _format_table(ranking: Sequence[Mapping[str, Any]]) -> str:
    # Text goes last: Hangul is double width in a terminal, so nothing after it would line up.
    lines = [f"{'rank':>4}  {'score':<6}  text"]
    lines += [f"{rank:>4}  {entry['score']:.4f}  {entry['text']}" for rank, entry in enumerate(ranking, 1)]
    return "\n".join(lines)


def _rank_jsonl_files(args: argparse.Namespace) -> None:
    if args.context is not None or args.candidates is not None or args.speakers is not None:
        raise UsageError("give either --context/--candidates(/--speakers) or --input/--output, not both")
    if args.input is None or args.output is None:
        raise UsageError("--input and --output go together")
    check_output_file(args.output, "--output")
    # Check every line before loading the model, so a typo on the last line does not cost a whole run.
    count = sum(1 for _ in _read_jsonl(args.input))
    if not count:
        raise UsageError(f"{args.input}: holds no items (one JSON object per line is expected)")
    selector = _load(args)
    ranked = selector.rank_batch(_read_jsonl(args.input), top_k=args.top_k, return_documents=args.return_documents)
    progress = tqdm(ranked, total=count, desc="Ranking", unit="dialogue")
    write_jsonl(progress, args.output)
    print(f"ranked {count} dialogues into {args.output}", file=sys.stderr)


def _read_jsonl(path: Path, check: Callable[[Any], object] = _item_inputs) -> Iterator[dict[str, Any]]:
    """Items of a JSONL file (blank lines skipped); a line ``check`` refuses raises a CliError naming file, line
    and field (``mrs-session`` passes its own check)."""
    try:
        for line_number, item in iter_json_objects(path, "an item"):
            try:
                check(item)
            except (TypeError, ValueError) as err:
                raise UsageError(f"{path}:{line_number}: {err}") from err
            yield item
    except DialogueFormatError as err:
        raise UsageError(str(err)) from err
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err}") from err


if __name__ == "__main__":
    sys.exit(main())
