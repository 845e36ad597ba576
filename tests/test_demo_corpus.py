"""The synthetic demo corpus: deterministic, well-formed, split by dialogue id, readable by the data layer."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from ko_mrs import demo_corpus
from ko_mrs.demo_corpus import DOMAINS, README_EXAMPLE, generate_dialogues, main, write_demo_corpus
from ko_mrs.dialogue_data import SPLITS, assign_split, iter_jsonl_dialogues

# "차" as a word of its own (차를, 차는, 차 한 잔), not inside 녹차 or 자동차.
STANDALONE_CHA = re.compile(r"(?<![가-힣])차(?:[를는가도로]|\s|$)")


@pytest.fixture(scope="module")
def dialogues() -> list[dict]:
    return generate_dialogues()


def test_same_seed_same_corpus_other_seed_other_corpus() -> None:
    assert generate_dialogues(60, seed=3) == generate_dialogues(60, seed=3)
    assert generate_dialogues(60, seed=3) != generate_dialogues(60, seed=4)


def test_shape_of_every_dialogue(dialogues: list[dict]) -> None:
    assert len(dialogues) >= 400
    ids = [d["id"] for d in dialogues]
    assert len(set(ids)) == len(ids)
    for d in dialogues:
        assert set(d) == {"id", "utterances", "speakers", "domain"}
        assert re.fullmatch(rf"demo-{d['domain']}-\d{{4}}", d["id"])
        assert 4 <= len(d["utterances"]) <= 12
        assert len(d["speakers"]) == len(d["utterances"])
        assert all(isinstance(u, str) and u.strip() for u in d["utterances"])
        assert "{" not in "".join(d["utterances"])  # every template slot was filled
        first, second = d["speakers"][0], d["speakers"][1]
        assert first != second
        assert d["speakers"] == [first if i % 2 == 0 else second for i in range(len(d["speakers"]))]


def test_all_domains_in_about_equal_shares(dialogues: list[dict]) -> None:
    counts = Counter(d["domain"] for d in dialogues)
    assert set(counts) == set(DOMAINS) and len(DOMAINS) == 10
    assert max(counts.values()) - min(counts.values()) <= 1


def test_cha_is_used_for_both_car_and_tea(dialogues: list[dict]) -> None:
    for domain in ("car", "tea"):
        texts = [u for d in dialogues if d["domain"] == domain for u in d["utterances"]]
        assert any(STANDALONE_CHA.search(u) for u in texts), domain


def test_few_duplicate_utterances_and_no_bare_fillers(dialogues: list[dict]) -> None:
    utterances = [u for d in dialogues for u in d["utterances"]]
    duplicate_rate = 1 - len(set(utterances)) / len(utterances)
    assert duplicate_rate < 0.2
    assert min(len(u) for u in utterances) >= 8  # no "네", "응" on their own


def test_write_splits_by_id_into_utf8_jsonl(tmp_path: Path, dialogues: list[dict]) -> None:
    out = tmp_path / "demo"
    paths = write_demo_corpus(out)
    assert list(paths) == list(SPLITS)
    seen: dict[str, str] = {}
    for split, path in paths.items():
        raw = path.read_bytes()
        text = raw.decode("utf-8")  # strict: raises on invalid UTF-8
        assert "\\u" not in text and "차" in text  # ensure_ascii=False
        lines = text.splitlines()
        assert lines, split
        for line in lines:
            record = json.loads(line)
            assert record["id"] not in seen
            assert assign_split(record["id"], 0, (0.8, 0.1, 0.1)) == split
            seen[record["id"]] = split
        assert [r["id"] for r in iter_jsonl_dialogues(path)] == [json.loads(line)["id"] for line in lines]
    assert set(seen) == {d["id"] for d in dialogues}
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{s}.jsonl" for s in SPLITS)
    reference = tmp_path / "reference.txt"  # the mode any ordinary file gets here
    reference.write_text("")
    assert {p.stat().st_mode & 0o777 for p in paths.values()} == {reference.stat().st_mode & 0o777}


def test_interrupted_write_keeps_old_files_and_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    paths = write_demo_corpus(tmp_path, n_dialogues=45, seed=1)
    before = {split: path.read_bytes() for split, path in paths.items()}

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(demo_corpus.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_demo_corpus(tmp_path, n_dialogues=45, seed=2)
    assert {split: path.read_bytes() for split, path in paths.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{s}.jsonl" for s in SPLITS)


def test_readme_example() -> None:
    context, candidates, answer = README_EXAMPLE["context"], README_EXAMPLE["candidates"], README_EXAMPLE["answer"]
    assert len(context) == 3 and len(candidates) == 6 and len(set(candidates)) == 6
    assert candidates[answer] == "자동차는 신중히 골라야합니다."  # the original README's true reply
    assert any(STANDALONE_CHA.search(turn) for turn in context)  # 차 = car
    tea = [c for c in candidates if "차" in c and "자동차" not in c]
    assert len(tea) == 2  # 차 = tea (or a car no context would pick): the word-overlap traps


def test_readme_example_is_not_in_the_training_data() -> None:
    """The demo model must rank the example by what it learned: none of its sentences is ever generated."""
    texts = {u for seed in (0, 1, 2) for d in generate_dialogues(2000, seed) for u in d["utterances"]}
    example = [*README_EXAMPLE["context"], *README_EXAMPLE["candidates"]]
    assert not [sentence for sentence in example if sentence in texts]


def test_cli_prints_counts_and_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "demo"), "--n-dialogues", "45", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    counts = {split: int(n) for split, n in re.findall(r"^(\w+)\s+(\d+) dialogues", out, flags=re.MULTILINE)}
    assert list(counts) == list(SPLITS) and sum(counts.values()) == 45
    assert all((tmp_path / "demo" / f"{split}.jsonl").is_file() for split in SPLITS)


# ------------------------------------------------------------------------------------------------- multi-party


def test_multiparty_dialogues_have_three_or_four_speakers_and_replies_to_others(tmp_path: Path) -> None:
    from ko_mrs.demo_corpus import write_multiparty_corpus
    from ko_mrs.dialogue_data import read_dialogues, read_eval_groups

    paths = write_multiparty_corpus(tmp_path, n_dialogues=200, seed=5)
    again = write_multiparty_corpus(tmp_path / "again", n_dialogues=200, seed=5)
    assert paths["test_groups"].read_bytes() == again["test_groups"].read_bytes()  # deterministic
    dialogues, _ = read_dialogues(paths["train"])  # the data layer reads it, speakers and all
    counts = Counter(len(set(speakers)) for speakers in dialogues["speakers"])
    assert set(counts) == {3, 4}, counts
    # some replies answer someone other than the last speaker: the turn before is another thread's
    records = [json.loads(line) for line in paths["train"].read_text("utf-8").splitlines()]
    assert any(r["threads"][t] != r["threads"][t - 1] for r in records for t in range(1, len(r["threads"])))
    groups = read_eval_groups(paths["test_groups"])
    assert groups
    for group in groups:
        assert len(group["speakers"]) == len(group["context"])
        assert group["reply_speaker"] in group["speakers"]  # they spoke before
        wrong = group["wrong_speaker_candidate"]
        assert group["labels"][wrong] == 0 and sum(group["labels"]) == 1
        assert len(set(group["candidates"])) == len(group["candidates"]) == 10
        dialogue = next(r for r in _records(paths) if r["id"] == group["group_id"].split("@")[0])
        t = len(group["context"])
        # the reply answers someone other than the last speaker: the last turn is the other thread's
        assert dialogue["threads"][t] != dialogue["threads"][t - 1]
        # the wrong-speaker negative is that thread's next turn, said by someone else than the reply's speaker
        later = [
            j for j in range(t + 1, len(dialogue["threads"])) if dialogue["threads"][j] == dialogue["threads"][t - 1]
        ]
        assert group["candidates"][wrong] == dialogue["utterances"][later[0]]
        assert dialogue["speakers"][later[0]] != group["reply_speaker"]


def _records(paths: dict[str, Path]) -> list[dict]:
    return [json.loads(line) for split in SPLITS for line in paths[split].read_text("utf-8").splitlines()]


def test_multi_party_is_an_option_the_default_demo_stays_two_party(tmp_path: Path, capsys) -> None:
    assert main(["--out", str(tmp_path / "two"), "--n-dialogues", "40"]) == 0
    assert not (tmp_path / "two" / "test_groups.jsonl").exists()
    assert main(["--out", str(tmp_path / "multi"), "--n-dialogues", "40", "--multi-party"]) == 0
    assert "test_groups" in capsys.readouterr().out
