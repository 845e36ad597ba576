"""Dialogue data layer: read, validate, split and build the examples BERT-FP trains and is scored on.

Sources are JSONL (one dialogue per line), the tab-separated benchmark format of Ubuntu V1, Douban
and E-commerce (``label \\t utt1 \\t ... \\t response``), and any ``datasets`` dataset with a
list-of-strings column. Everything lands in an Arrow ``datasets.Dataset`` (on disk, memory-mapped),
so memory stays bounded however large the corpus is.

Every bad record raises :class:`DialogueFormatError` naming the file, line and field. Dialogues too
short to use raise too, unless ``skip_short=True``; then they are counted in :class:`ReadReport`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, Features, Value
from datasets import Sequence as HFSequence

from ko_mrs.cli_errors import UsageError, check_output_file
from ko_mrs.cli_errors import report as report_error
from ko_mrs.negatives import NegativeSampler
from ko_mrs.preprocessing import DialoguePool

SPLITS = ("train", "validation", "test")
JSONL_SUFFIXES = {".jsonl", ".json"}
TSV_SUFFIXES = {".txt", ".tsv"}

DIALOGUE_FEATURES = Features(
    {
        "id": Value("string"),
        "utterances": HFSequence(Value("string")),
        "speakers": HFSequence(Value("string")),
        "corpus": Value("string"),
        "source": Value("string"),
        "line": Value("int64"),
        "num_turns": Value("int32"),
    }
)


class DialogueFormatError(UsageError, ValueError):
    """A record that cannot be used; the message names the file, line and field (line 0: the whole file)."""

    def __init__(self, path: str | os.PathLike, line: int, field: str, message: str) -> None:
        self.path, self.line, self.field = str(path), line, field
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}" if field == "<file>" else f"{where}: field '{field}': {message}")


@dataclass
class ReadReport:
    """What reading one source produced, so that nothing is dropped without a count."""

    source: str
    dialogues: int = 0
    utterances: int = 0
    skipped_short: int = 0
    skipped_examples: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.source}: {self.dialogues} dialogues, {self.utterances} utterances"
        if self.skipped_short:
            text += f", skipped {self.skipped_short} too-short dialogues (e.g. {', '.join(self.skipped_examples)})"
        return text


def assign_split(dialogue_id: str, seed: int, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> str:
    """Split by a stable hash of the dialogue id: order-independent, so no dialogue lands in two splits."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or not abs(sum(ratios) - 1.0) < 1e-6:
        raise ValueError(f"split ratios must be three non-negative numbers summing to 1, got {ratios}")
    digest = hashlib.blake2b(f"{seed}\x00{dialogue_id}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    if u < ratios[0]:
        return "train"
    return "validation" if u < ratios[0] + ratios[1] else "test"


def default_corpus_name(path: Path) -> str:
    """Name a corpus after its folder (``ko/xpersona/valid.jsonl`` -> ``xpersona``): split files share it."""
    return path.parent.name or path.stem


# --------------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------------


def _decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) and turn a decoding failure into an error naming the line.

    A UTF-8 byte-order mark (Windows editors write one) is dropped from the first line.
    """
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DialogueFormatError(
                    path, number, "<line>", f"not valid UTF-8 ({err.reason} at byte {err.start})"
                ) from None


def _check_utterances(value: object, path: str | Path, line: int, name: str = "utterances") -> list[str]:
    if not isinstance(value, list) or not value:
        raise DialogueFormatError(path, line, name, "must be a non-empty list of strings")
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise DialogueFormatError(path, line, f"{name}[{i}]", f"must be a string, got {type(text).__name__}")
        if not text.strip():
            raise DialogueFormatError(path, line, f"{name}[{i}]", "is empty")
    return value


def _check_speakers(value: object, n: int, path: str | Path, line: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise DialogueFormatError(path, line, "speakers", "must be a list of strings")
    if len(value) != n:
        raise DialogueFormatError(path, line, "speakers", f"has {len(value)} entries for {n} utterances")
    return value


def iter_jsonl_dialogues(
    path: str | Path, corpus: str | None = None, seen_ids: dict[str, str] | None = None
) -> Iterator[dict]:
    """Yield validated dialogue records from a JSONL file: ``{"id", "utterances", "speakers"?}``.

    A given id must be unique (in ``seen_ids``, shared across files, id -> "file:line"): splits and group
    ids are keyed by it.
    """
    path = Path(path)
    corpus = corpus or default_corpus_name(path)
    seen_ids = {} if seen_ids is None else seen_ids
    for line, record in iter_json_objects(path, "a dialogue"):
        utterances = _check_utterances(record.get("utterances"), path, line)
        dialogue_id = record.get("id")
        if dialogue_id is None:
            dialogue_id = f"{path.stem}-{line}"
        elif isinstance(dialogue_id, bool) or not isinstance(dialogue_id, (str, int)):
            raise DialogueFormatError(path, line, "id", "must be a string or an integer")
        elif not str(dialogue_id).strip():
            raise DialogueFormatError(path, line, "id", "is empty")
        elif str(dialogue_id) in seen_ids:
            first = seen_ids[str(dialogue_id)]
            raise DialogueFormatError(path, line, "id", f"{dialogue_id!r} is already used at {first}")
        else:
            seen_ids[str(dialogue_id)] = f"{path}:{line}"
        yield {
            "id": str(dialogue_id),
            "utterances": utterances,
            "speakers": _check_speakers(record.get("speakers"), len(utterances), path, line),
            "corpus": corpus,
            "source": str(path),
            "line": line,
            "num_turns": len(utterances),
        }


@dataclass
class TsvRow:
    """One line of the Ubuntu/Douban/E-commerce benchmark format."""

    line: int
    label: int
    context: list[str]
    response: str


def iter_tsv_rows(path: str | Path) -> Iterator[TsvRow]:
    """Yield validated rows of ``label \\t utt1 \\t ... \\t response`` (labels 0 or 1)."""
    path = Path(path)
    for line, text in _decoded_lines(path):
        if not text.strip():
            continue
        fields = text.split("\t")
        if fields[0] not in ("0", "1"):
            raise DialogueFormatError(path, line, "label", f"must be 0 or 1, got {fields[0][:20]!r}")
        if len(fields) < 3:
            raise DialogueFormatError(
                path, line, "utterances", "needs a label, at least one context turn and a response"
            )
        if not fields[-1].strip():
            raise DialogueFormatError(path, line, "response", "is empty")
        context = fields[1:-1]
        for i, turn in enumerate(context):
            if not turn.strip():
                raise DialogueFormatError(path, line, f"utterances[{i}]", "is empty")
        yield TsvRow(line=line, label=int(fields[0]), context=context, response=fields[-1])


def iter_tsv_dialogues(path: str | Path, corpus: str | None = None) -> Iterator[dict]:
    """Dialogues from the positive rows of a benchmark file: the context followed by its true response."""
    path = Path(path)
    corpus = corpus or default_corpus_name(path)
    previous: list[str] | None = None
    for row in iter_tsv_rows(path):
        if row.label != 1:
            continue
        utterances = [*row.context, row.response]
        if utterances == previous:  # Douban test groups may hold several positives for one context
            continue
        previous = utterances
        yield {
            "id": f"{path.stem}-{row.line}",
            "utterances": utterances,
            "speakers": [],
            "corpus": corpus,
            "source": str(path),
            "line": row.line,
            "num_turns": len(utterances),
        }


def read_tsv_groups(path: str | Path) -> list[dict]:
    """Evaluation groups from a benchmark test file: consecutive rows that share a context.

    This is how the published Ubuntu/Douban/E-commerce numbers are scored, so such files are used
    as they are rather than rebuilt. Every group needs a positive (label 1) to be scored.
    """
    path = Path(path)
    groups: list[dict] = []
    for row in iter_tsv_rows(path):
        if groups and groups[-1]["context"] == row.context:
            groups[-1]["candidates"].append(row.response)
            groups[-1]["labels"].append(row.label)
        else:
            groups.append(
                {
                    "group_id": f"{path.stem}-{row.line}",
                    "context": row.context,
                    "candidates": [row.response],
                    "labels": [row.label],
                    "line": row.line,
                }
            )
    for group in groups:
        line = group.pop("line")
        if 1 not in group["labels"]:
            raise DialogueFormatError(path, line, "label", "this group (rows sharing a context) has no label-1 row")
    if not groups:
        raise DialogueFormatError(path, 0, "<file>", "holds no groups")
    return groups


def _iter_sources(sources: Sequence[str], corpora: Sequence[str | None], stamps: Sequence[str]) -> Iterator[dict]:
    """Generator for ``Dataset.from_generator``; ``stamps`` only make the cache key follow file changes.

    A file that yields no dialogue at all (empty, blank lines, a benchmark file without label-1 rows) is an
    error: it is almost always the wrong file, and datasets would fail later without naming it.
    """
    del stamps
    seen_ids: dict[str, str] = {}
    for source, corpus in zip(sources, corpora, strict=True):
        path = Path(source)
        if path.suffix in JSONL_SUFFIXES:
            records = iter_jsonl_dialogues(path, corpus, seen_ids)
            empty = "holds no dialogues (one JSON object per line is expected)"
        elif path.suffix in TSV_SUFFIXES:
            records = iter_tsv_dialogues(path, corpus)
            empty = "holds no dialogues (a benchmark file needs label-1 rows: label, context turns, response)"
        else:
            raise DialogueFormatError(
                path, 0, "<file>", f"unknown format {path.suffix!r}; use .jsonl, .json, .txt or .tsv"
            )
        count = 0
        for count, record in enumerate(records, start=1):  # noqa: B007 - count is read after the loop
            yield record
        if not count:
            raise DialogueFormatError(path, 0, "<file>", empty)


def _file_stamp(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def read_dialogues(
    sources: str | Path | Sequence[str | Path],
    *,
    corpus: str | None = None,
    min_turns: int = 2,
    skip_short: bool = False,
    cache_dir: str | None = None,
) -> tuple[Dataset, list[ReadReport]]:
    """Read and validate dialogues from files into one Arrow dataset.

    A dialogue with fewer than ``min_turns`` utterances (a context and a response need two) raises
    :class:`DialogueFormatError` unless ``skip_short`` is set; skipped ones are counted per file.
    """
    paths = [Path(sources)] if isinstance(sources, (str, Path)) else [Path(s) for s in sources]
    if not paths:
        raise UsageError("no dialogue files given")
    for path in paths:
        if path.is_dir():
            raise UsageError(f"{path}: is a directory; give the dialogue files in it")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
    try:
        dataset = Dataset.from_generator(
            _iter_sources,
            features=DIALOGUE_FEATURES,
            gen_kwargs={
                "sources": [str(p) for p in paths],
                "corpora": [corpus] * len(paths),
                "stamps": [_file_stamp(p) for p in paths],
            },
            cache_dir=cache_dir,
        )
    except datasets.exceptions.DatasetGenerationError as err:
        cause = err.__cause__
        if isinstance(cause, DialogueFormatError):
            raise cause from None
        raise
    return _drop_short(dataset, min_turns, skip_short)


def require_two_dialogues(dialogues: Dataset, files: Sequence[str]) -> None:
    """Training draws negatives from other dialogues, so one dialogue (or none) cannot train."""
    if len(dialogues) < 2:
        raise DialogueFormatError(
            ", ".join(files), 0, "<file>", f"{len(dialogues)} usable dialogue(s); drawing negatives needs at least 2"
        )


def _drop_short(dataset: Dataset, min_turns: int, skip_short: bool) -> tuple[Dataset, list[ReadReport]]:
    """Raise on, or count and drop, dialogues too short to give a (context, response) pair.

    Counting runs in Arrow over the memory-mapped table, so it stays cheap at millions of rows.
    """
    if min_turns < 2:
        raise ValueError(f"min_turns must be at least 2, got {min_turns}")
    table = dataset.data.table.select(["source", "line", "num_turns"])
    is_short = pc.less(table["num_turns"], min_turns)
    table = table.append_column("short", is_short).append_column(
        "kept_turns", pc.if_else(is_short, 0, table["num_turns"])
    )
    stats = table.group_by("source", use_threads=False).aggregate(
        [("short", "sum"), ("kept_turns", "sum"), ("num_turns", "count")]
    )
    short_rows = table.filter(is_short)
    reports = []
    for row in stats.to_pylist():
        skipped = int(row["short_sum"])
        examples = short_rows.filter(pc.equal(short_rows["source"], row["source"]))["line"][:3].to_pylist()
        reports.append(
            ReadReport(
                source=row["source"],
                dialogues=int(row["num_turns_count"]) - skipped,
                utterances=int(row["kept_turns_sum"]),
                skipped_short=skipped,
                skipped_examples=[f"line {line}" for line in examples],
            )
        )
    if short_rows.num_rows and not skip_short:
        first = short_rows.slice(0, 1).to_pylist()[0]
        raise DialogueFormatError(
            first["source"],
            first["line"],
            "utterances",
            f"has {first['num_turns']} utterance(s); at least {min_turns} are needed "
            f"({short_rows.num_rows} such dialogues in all; pass skip_short / --skip_short to skip and count them)",
        )
    if short_rows.num_rows:
        dataset = dataset.filter(lambda n: n >= min_turns, input_columns="num_turns")
    return dataset, reports


def from_hf_dataset(
    dataset: Dataset,
    *,
    column: str = "utterances",
    id_column: str | None = None,
    speakers_column: str | None = None,
    corpus: str = "hf",
    name: str = "<datasets>",
    min_turns: int = 2,
    skip_short: bool = False,
) -> tuple[Dataset, list[ReadReport]]:
    """Validate any ``datasets`` dataset with a list-of-strings column and bring it to our schema.

    Errors name the dataset and the row index as the "line".
    """
    if column not in dataset.column_names:
        raise DialogueFormatError(name, 0, column, f"no such column (have {dataset.column_names})")

    def convert(batch: dict, indices: list[int]) -> dict:
        out: dict[str, list] = {key: [] for key in DIALOGUE_FEATURES}
        for j, index in enumerate(indices):
            utterances = _check_utterances(batch[column][j], name, index, column)
            speakers = batch[speakers_column][j] if speakers_column else None
            out["id"].append(str(batch[id_column][j]) if id_column else f"{corpus}-{index}")
            out["utterances"].append(utterances)
            out["speakers"].append(_check_speakers(speakers, len(utterances), name, index))
            out["corpus"].append(corpus)
            out["source"].append(name)
            out["line"].append(index)
            out["num_turns"].append(len(utterances))
        return out

    converted = dataset.map(
        convert, batched=True, with_indices=True, remove_columns=dataset.column_names, features=DIALOGUE_FEATURES
    )
    return _drop_short(converted, min_turns, skip_short)


def split_by_id(dataset: Dataset, seed: int = 0, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> DatasetDict:
    """Train/validation/test by dialogue id (see :func:`assign_split`)."""
    names = [assign_split(i, seed, ratios) for i in dataset["id"]]
    return DatasetDict({s: dataset.select([i for i, n in enumerate(names) if n == s]) for s in SPLITS})


# --------------------------------------------------------------------------------------------------
# Evaluation groups
# --------------------------------------------------------------------------------------------------


def build_eval_groups(
    dialogues: Dataset,
    *,
    num_candidates: int = 10,
    seed: int = 0,
    max_turns: int | None = None,
    same_corpus_negatives: bool = True,
) -> list[dict]:
    """One 1-positive, (num_candidates-1)-negative group per dialogue, at a seeded random position.

    Negatives are utterances of other dialogues (of the same corpus by default: mixing corpora
    lets a model tell corpora apart instead of responses). A negative never equals the positive
    text, and no text appears twice in a group. A dialogue whose corpus has too few distinct
    utterances is an error naming its file and line.
    """
    if num_candidates < 2:
        raise ValueError(f"num_candidates must be at least 2 (a positive and a negative), got {num_candidates}")
    # one generator for the whole file (see ko_mrs.negatives): group files written before stay the same groups
    rng = random.Random(seed)
    utterances = dialogues["utterances"]
    speakers = dialogues["speakers"] if "speakers" in dialogues.column_names else [[]] * len(dialogues)
    corpora = dialogues["corpus"]
    sampler = NegativeSampler(DialoguePool(dialogues, same_corpus_negatives=same_corpus_negatives))
    groups = []
    for d, turns in enumerate(utterances):
        t = rng.randrange(1, len(turns))
        positive = turns[t]
        seen = {positive}
        negatives: list[str] = []
        # a dialogue alone in its corpus has no negative to offer (the sampler would go to other corpora)
        alone = len(sampler.pool.corpus_members(d)) < 2
        for _ in range(0 if alone else 100 * num_candidates):
            if len(negatives) == num_candidates - 1:
                break
            negative = sampler.random_negative(d, rng)
            text = utterances[negative.dialogue][negative.position]
            if text not in seen:
                seen.add(text)
                negatives.append(text)
        if len(negatives) < num_candidates - 1:
            row = dialogues[d]
            raise DialogueFormatError(
                row["source"],
                row["line"],
                "utterances",
                f"corpus {corpora[d]!r} has too few distinct utterances to draw {num_candidates - 1} negatives "
                f"for dialogue {row['id']!r} (lower --num_candidates or add dialogues)",
            )
        candidates = [positive, *negatives]
        order = list(range(num_candidates))
        rng.shuffle(order)
        start = 0 if max_turns is None else max(0, t - max_turns)
        group = {
            "group_id": f"{dialogues[d]['id']}@{t}",
            "context": turns[start:t],
            "candidates": [candidates[i] for i in order],
            "labels": [int(i == 0) for i in order],
            "corpus": corpora[d],
        }
        if speakers[d]:  # who said each context turn, and who says the reply (every candidate)
            group |= {"speakers": speakers[d][start:t], "reply_speaker": speakers[d][t]}
        groups.append(group)
    return groups


def write_jsonl(records: Iterable[dict], path: str | Path) -> Path:
    """Write atomically: a temporary file beside ``path``, synced, then renamed over it.

    A crash or Ctrl-C part-way leaves ``path`` as it was (absent or the previous file), never half-written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def iter_json_objects(path: str | Path, what: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; bad UTF-8 or JSON raises naming the line."""
    path = Path(path)
    for line, text in _decoded_lines(path):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise DialogueFormatError(
                path, line, "<json>", f"malformed JSON: {err.msg} at column {err.colno}"
            ) from None
        if not isinstance(record, dict):
            raise DialogueFormatError(path, line, "<json>", f"{what} must be a JSON object")
        # a lone surrogate can only come from a \u escape, and no UTF-8 consumer (Arrow, tokenizers) accepts it
        if "\\u" in text and (where := _surrogate_field(record)) is not None:
            raise DialogueFormatError(path, line, where or "<json>", "holds a lone surrogate (an invalid \\u escape)")
        yield line, record


def _surrogate_field(value: object, name: str = "") -> str | None:
    """The field (``utterances[2]``) holding a string that is not valid Unicode, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return name
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        child = f"{name}[{key}]" if isinstance(key, int) else f"{name}.{key}" if name else str(key)
        if isinstance(key, str) and _surrogate_field(key) is not None:
            return child
        if (found := _surrogate_field(item, child)) is not None:
            return found
    return None


def check_group_speakers(group: dict, path: str | Path, line: int) -> None:
    """A group's optional ``speakers`` (one per context turn) and ``reply_speaker``, which go together."""
    if "speakers" not in group and "reply_speaker" not in group:
        return
    _check_speakers(group.get("speakers"), len(group["context"]), path, line)
    if not group.get("speakers"):
        raise DialogueFormatError(path, line, "speakers", "is missing or empty, but reply_speaker is given")
    if not isinstance(group.get("reply_speaker"), str):
        raise DialogueFormatError(path, line, "reply_speaker", "must be a string when speakers are given")


def read_eval_groups(path: str | Path) -> list[dict]:
    """Read evaluation groups written by :func:`write_jsonl` (or converted benchmark files)."""
    path = Path(path)
    if path.suffix in TSV_SUFFIXES:
        return read_tsv_groups(path)
    groups = []
    for line, group in iter_json_objects(path, "a group"):
        for key in ("group_id", "context", "candidates", "labels"):
            if key not in group:
                raise DialogueFormatError(path, line, key, "is missing")
        _check_utterances(group["context"], path, line, "context")
        _check_utterances(group["candidates"], path, line, "candidates")
        labels = group["labels"]
        if (
            not isinstance(labels, list)
            or len(labels) != len(group["candidates"])
            or any(isinstance(v, bool) or v not in (0, 1) for v in labels)
        ):
            raise DialogueFormatError(path, line, "labels", "must be a list of 0/1, one per candidate")
        if 1 not in labels:
            raise DialogueFormatError(path, line, "labels", "has no positive (1): the group cannot be scored")
        check_group_speakers(group, path, line)
        groups.append(group)
    if not groups:
        raise DialogueFormatError(path, 0, "<file>", "holds no groups")
    return groups


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``mrs-data stats FILES`` and ``mrs-data groups FILES --out groups.jsonl``."""
    parser = argparse.ArgumentParser(prog="mrs-data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    stats = sub.add_parser(
        "stats", help="validate files and print per-file counts of dialogues, utterances and windows"
    )
    stats.add_argument("files", nargs="+")
    stats.add_argument("--skip_short", action="store_true")
    groups = sub.add_parser("groups", help="write fixed 1-in-N evaluation groups to JSONL")
    groups.add_argument("files", nargs="+")
    groups.add_argument("--out", required=True)
    groups.add_argument("--num_candidates", type=int, default=10)
    groups.add_argument("--seed", type=int, default=0)
    groups.add_argument("--skip_short", action="store_true")
    args = parser.parse_args(argv)
    datasets.disable_progress_bars()
    try:
        if args.command == "groups":
            if args.num_candidates < 2:
                raise UsageError(f"--num_candidates must be at least 2, got {args.num_candidates}")
            check_output_file(args.out, "--out")
        if args.command == "stats":
            totals = [0, 0, 0, 0]
            print(f"{'file':60s} {'dialogues':>9s} {'utterances':>10s} {'windows':>8s} {'skipped':>7s}")
            for path in args.files:
                dataset, (report,) = read_dialogues(path, skip_short=args.skip_short)
                windows = report.utterances - report.dialogues  # one window per response position
                print(
                    f"{path:60s} {report.dialogues:9d} {report.utterances:10d} {windows:8d} {report.skipped_short:7d}"
                )
                for i, value in enumerate((report.dialogues, report.utterances, windows, report.skipped_short)):
                    totals[i] += value
            print(f"{'total':60s} {totals[0]:9d} {totals[1]:10d} {totals[2]:8d} {totals[3]:7d}")
        else:
            dataset, reports = read_dialogues(args.files, skip_short=args.skip_short)
            for report in reports:
                print(report)
            built = build_eval_groups(dataset, num_candidates=args.num_candidates, seed=args.seed)
            write_jsonl(built, args.out)
            print(f"wrote {len(built)} groups to {args.out}")
    except (UsageError, FileNotFoundError) as err:
        return report_error("mrs-data", err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
