"""The data layer: readers, validation errors that name the place, builders' properties."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from datasets import Dataset

from ko_mrs.dialogue_data import (
    DialogueFormatError,
    assign_split,
    build_eval_groups,
    from_hf_dataset,
    main,
    read_dialogues,
    read_eval_groups,
    read_tsv_groups,
    split_by_id,
    write_jsonl,
)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def dialogue(i: int, n: int = 4, **extra) -> str:
    record = {"id": f"d{i}", "utterances": [f"대화 {i} 의 {t} 번째 말 단어{i}x{t}" for t in range(n)], **extra}
    return json.dumps(record, ensure_ascii=False)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "demo" / "train.jsonl", [dialogue(i, 3 + i % 5) for i in range(60)])


def test_reads_jsonl(corpus: Path) -> None:
    dataset, (report,) = read_dialogues(corpus)
    assert len(dataset) == 60 and report.dialogues == 60
    assert report.utterances == sum(3 + i % 5 for i in range(60))
    row = dataset[1]
    assert row["id"] == "d1" and row["corpus"] == "demo" and row["line"] == 2 and row["num_turns"] == 4


def test_reads_speakers(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl", [dialogue(0, 2, speakers=["user", "system"])])
    dataset, _ = read_dialogues(path)
    assert dataset[0]["speakers"] == ["user", "system"]


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ('{"id": "a", "utterances": ["x", "y"]', "<json>", "malformed JSON"),
        ('{"id": "a"}', "utterances", "non-empty list"),
        ('{"id": "a", "utterances": []}', "utterances", "non-empty list"),
        ('{"id": "a", "utterances": ["x", 3]}', "utterances[1]", "must be a string"),
        ('{"id": "a", "utterances": ["x", "  "]}', "utterances[1]", "is empty"),
        ('{"id": "a", "utterances": ["x", "y"], "speakers": ["A"]}', "speakers", "1 entries for 2"),
        ('["x", "y"]', "<json>", "JSON object"),
    ],
)
def test_bad_jsonl_names_file_line_field(tmp_path: Path, line: str, field: str, message: str) -> None:
    path = write_lines(tmp_path / "bad.jsonl", [dialogue(0), dialogue(1), line])
    with pytest.raises(DialogueFormatError) as info:
        read_dialogues(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), 3, field)
    assert message in str(err) and f"{path}:3" in str(err)


def test_non_utf8_names_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes((dialogue(0) + "\n").encode() + '{"utterances": ["caf\xe9", "x"]}\n'.encode("latin-1"))
    with pytest.raises(DialogueFormatError, match=r"latin.jsonl:2: field '<line>': not valid UTF-8"):
        read_dialogues(path)


def test_short_dialogue_errors_unless_skipped(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.jsonl", [dialogue(0), dialogue(1, 1), dialogue(2), dialogue(3, 1)])
    with pytest.raises(DialogueFormatError, match=r"s.jsonl:2: field 'utterances': has 1 utterance.*2 such"):
        read_dialogues(path)
    dataset, (report,) = read_dialogues(path, skip_short=True)
    assert len(dataset) == 2 and report.skipped_short == 2 and report.skipped_examples == ["line 2", "line 4"]
    assert "skipped 2 too-short" in str(report)


def test_cache_follows_file_changes(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [dialogue(0)])
    assert len(read_dialogues(path)[0]) == 1
    write_lines(path, [dialogue(0), dialogue(1)])
    assert len(read_dialogues(path)[0]) == 2


TSV = [
    "1\tu1 a\tu2 b\tresp true",
    "0\tu1 a\tu2 b\tresp false",
    "1\tv1\tv2\tv3\tresp2",
    "0\tv1\tv2\tv3\tneg2",
    "0\tv1\tv2\tv3\tneg3",
]


def test_reads_benchmark_tsv(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "ubuntu" / "train.txt", TSV)
    dataset, (report,) = read_dialogues(path)
    assert dataset["utterances"] == [["u1 a", "u2 b", "resp true"], ["v1", "v2", "v3", "resp2"]]
    assert report.dialogues == 2
    groups = read_tsv_groups(path)
    assert [g["labels"] for g in groups] == [[1, 0], [1, 0, 0]]
    assert groups[1]["context"] == ["v1", "v2", "v3"] and groups[1]["candidates"] == ["resp2", "neg2", "neg3"]
    assert read_eval_groups(path) == groups


@pytest.mark.parametrize(
    ("line", "field"), [("2\ta\tb", "label"), ("x\ta\tb", "label"), ("1\tonly", "utterances"), ("1\ta\t", "response")]
)
def test_bad_tsv_names_field(tmp_path: Path, line: str, field: str) -> None:
    path = write_lines(tmp_path / "t.txt", [TSV[0], line])
    with pytest.raises(DialogueFormatError) as info:
        read_dialogues(path)
    assert (info.value.line, info.value.field) == (2, field)


def test_reads_hf_dataset() -> None:
    source = Dataset.from_dict({"turns": [["a", "b", "c"], ["d", "e"]], "key": ["x", "y"]})
    dataset, (report,) = from_hf_dataset(source, column="turns", id_column="key", corpus="mine")
    assert dataset["id"] == ["x", "y"] and dataset["utterances"][0] == ["a", "b", "c"] and report.utterances == 5
    bad = Dataset.from_dict({"turns": [["a", "b"], ["c", ""]]})
    with pytest.raises(DialogueFormatError, match=r"<datasets>:1: field 'turns\[1\]': is empty"):
        from_hf_dataset(bad, column="turns")
    with pytest.raises(DialogueFormatError, match="no such column"):
        from_hf_dataset(bad, column="utterances")


def test_split_is_by_id_deterministic_and_disjoint(corpus: Path) -> None:
    dataset, _ = read_dialogues(corpus)
    splits = split_by_id(dataset, seed=3)
    ids = [set(splits[s]["id"]) for s in ("train", "validation", "test")]
    assert sum(map(len, ids)) == 60 and set.union(*ids) == set(dataset["id"])
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    # order-independent: a shuffled dataset puts each dialogue in the same split
    shuffled = split_by_id(dataset.shuffle(seed=1), seed=3)
    assert set(shuffled["test"]["id"]) == ids[2]
    assert assign_split("d1", 3) == assign_split("d1", 3)
    assert {assign_split(f"x{i}", 0) for i in range(200)} == {"train", "validation", "test"}


def test_eval_groups(corpus: Path, tmp_path: Path) -> None:
    dataset, _ = read_dialogues(corpus)
    groups = build_eval_groups(dataset, seed=7)
    assert len(groups) == 60
    for group in groups:
        assert len(group["candidates"]) == 10 and sum(group["labels"]) == 1
        positive = group["candidates"][group["labels"].index(1)]
        negatives = [c for c, label in zip(group["candidates"], group["labels"], strict=True) if not label]
        assert positive not in negatives and len(set(group["candidates"])) == 10
        source = dataset[int(group["group_id"][1:].split("@")[0])]["utterances"]
        t = int(group["group_id"].split("@")[1])
        assert group["context"] == source[:t] and positive == source[t]
        assert not set(negatives) & set(source)  # negatives come from other dialogues
    assert build_eval_groups(dataset, seed=7) == groups
    assert build_eval_groups(dataset, seed=8) != groups
    path = write_jsonl(groups, tmp_path / "g" / "groups.jsonl")
    assert read_eval_groups(path) == groups
    assert [g["context"] for g in build_eval_groups(dataset, seed=7, max_turns=2)] == [
        g["context"][-2:] for g in groups
    ]


def test_bad_group_file(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "g.jsonl",
        [json.dumps({"group_id": "a", "context": ["x"], "candidates": ["y", "z"], "labels": [1]})],
    )
    with pytest.raises(DialogueFormatError, match=r"g.jsonl:1: field 'labels'"):
        read_eval_groups(path)


def test_cli_stats_and_errors(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["stats", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "60" in out and "total" in out
    bad = write_lines(tmp_path / "bad.jsonl", ["{oops"])
    assert main(["stats", str(bad)]) == 2
    assert f"{bad}:1: field '<json>'" in capsys.readouterr().err
    assert main(["stats", str(tmp_path / "missing.jsonl")]) == 2
    assert main(["groups", str(corpus), "--out", str(tmp_path / "g.jsonl")]) == 0
    assert len(read_eval_groups(tmp_path / "g.jsonl")) == 60


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not beside this checkout")
def test_reads_all_shared_korean_data(capsys: pytest.CaptureFixture) -> None:
    files = sorted(str(p) for p in (SHARED_DATA / "ko").glob("*/*.jsonl"))
    assert len(files) == 7
    assert main(["stats", *files, "--skip_short"]) == 0
    out = capsys.readouterr().out
    print(out)
    dataset, reports = read_dialogues(files, skip_short=True)
    assert sum(r.dialogues for r in reports) == len(dataset) > 2500
    assert sum(r.skipped_short for r in reports) >= 1  # skku_music_cs/dev.jsonl line 12 has one utterance
