"""Property-based tests of the JSONL reader (issue 9), and the inputs it must accept rather than refuse.

Why: a reader that leaks a TypeError, UnicodeError or a datasets error on some odd line gives a user a
traceback instead of a line number. Whatever bytes or JSON values a line holds, the reader must either
return dialogues that every later stage can store (Arrow, tokenizers: valid UTF-8 strings) or raise
``DialogueFormatError``; nothing else.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ko_mrs.dialogue_data import DialogueFormatError, iter_jsonl_dialogues, read_dialogues, read_eval_groups

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)
# dialogue-shaped objects, so that the strategy also reaches the per-field checks and not only "not an object"
DIALOGUES = st.fixed_dictionaries(
    {},
    optional={
        "id": JSON_VALUES,
        "utterances": st.lists(st.text() | JSON_VALUES, max_size=4) | JSON_VALUES,
        "speakers": st.lists(st.text(max_size=3), max_size=4) | JSON_VALUES,
    },
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read_all(data: bytes) -> list[dict] | None:
    """The dialogues of a file holding ``data``, or None when the reader refused it with DialogueFormatError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "corpus" / "d.jsonl"
        path.parent.mkdir()
        path.write_bytes(data)
        try:
            return list(iter_jsonl_dialogues(path))
        except DialogueFormatError as error:
            assert str(path) in str(error) and error.field  # the message names the file and a field
            return None


def assert_storable(records: list[dict]) -> None:
    for record in records:
        assert isinstance(record["id"], str) and record["id"].encode("utf-8")
        assert record["utterances"] and all(isinstance(u, str) and u.strip() for u in record["utterances"])
        for text in (*record["utterances"], *record["speakers"]):
            text.encode("utf-8")  # raises on a lone surrogate, which Arrow would refuse
        assert record["speakers"] == [] or len(record["speakers"]) == len(record["utterances"])
    ids = [record["id"] for record in records]
    assert len(ids) == len(set(ids))


@SETTINGS
@given(st.lists(JSON_VALUES | DIALOGUES, min_size=1, max_size=5))
def test_any_json_lines_read_or_raise_format_error(values: list) -> None:
    records = read_all("".join(json.dumps(v) + "\n" for v in values).encode("utf-8"))
    if records is not None:
        assert_storable(records)
        assert len(records) == sum(1 for v in values if isinstance(v, dict))


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_read_or_raise_format_error(data: bytes) -> None:
    records = read_all(data)
    if records is not None:
        assert_storable(records)


@settings(max_examples=25, deadline=None)
@given(st.lists(DIALOGUES, min_size=1, max_size=3))
def test_what_the_reader_accepts_arrow_stores(values: list) -> None:
    """The full path (``datasets`` generator, Arrow) raises nothing but DialogueFormatError either."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.jsonl"
        path.write_text("".join(json.dumps(v) + "\n" for v in values), encoding="utf-8")
        try:
            dataset, _ = read_dialogues(path, skip_short=True, cache_dir=folder)
        except DialogueFormatError:
            return
        assert len(dataset) <= len(values)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    """Windows editors start UTF-8 files with a BOM; the first line must still parse (issue 9, 3.14)."""
    lines = ['{"id": "a", "utterances": ["안녕", "네"]}', '{"id": "b", "utterances": ["뭐 해", "밥"]}']
    path = tmp_path / "bom.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    dataset, _ = read_dialogues(path, cache_dir=str(tmp_path / "cache"))
    assert dataset["id"] == ["a", "b"] and dataset["utterances"][0] == ["안녕", "네"]
    groups = tmp_path / "groups.txt"
    groups.write_text("1\t안녕\t네\n0\t안녕\t밥\n", encoding="utf-8-sig")
    assert read_eval_groups(groups)[0]["labels"] == [1, 0]
