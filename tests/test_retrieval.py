"""The retrieve-then-rerank responder (issue 14): bi-encoder towers, the reply index, the teacher-score cache, a
trained student, and mrs-respond's errors.

Why: the index must return exactly the replies a brute-force search would (a faster search that loses the best
reply silently ruins the reranker's input); the teacher's scores are the costly part of distillation and must be
reused only for the same teacher and rows; a student must learn something from the data at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

import run_distillation
from ko_mrs import responder as responder_module
from ko_mrs.bi_encoder import BertBiEncoder, TextEncoder
from ko_mrs.dialogue_data import build_eval_groups, read_dialogues, write_jsonl
from ko_mrs.distillation import add_teacher_scores, listwise_kl, margin_mse
from ko_mrs.negatives import NegativeSampler
from ko_mrs.preprocessing import DialoguePool, add_eot_token, build_pairs, tokenize_dialogues
from ko_mrs.retrieval import ReplyIndex, faiss_available, read_reply_pool
from modeling_mrs import BertForResponseSelection

COMMON = ["--report_to", "none", "--disable_tqdm", "true", "--max_seq_length", "64", "--max_reply_length", "32"]


def save_cross_encoder(base: Path, out: Path, seed: int) -> Path:
    """A 2-class mean-pooling cross-encoder over the tiny BERT, its head drawn from ``seed`` (a stand-in teacher)."""
    torch.manual_seed(seed)
    model = BertForResponseSelection.from_pretrained(
        base, num_labels=2, id2label={0: "not_next", 1: "next"}, label2id={"not_next": 0, "next": 1}
    )
    tokenizer = AutoTokenizer.from_pretrained(base)
    add_eot_token(tokenizer)
    model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=8)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def small_data(tiny_setup: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """12 training dialogues and 8 seeds of 1-in-10 groups built from them (see test_fine_tuning's end-to-end)."""
    root = tmp_path_factory.mktemp("retrieval")
    small = root / "train.jsonl"
    small.write_text("\n".join(tiny_setup["train"].read_text(encoding="utf-8").splitlines()[:12]) + "\n", "utf-8")
    dialogues, _ = read_dialogues(small)
    groups = [{**g, "group_id": f"{s}/{g['group_id']}"} for s in range(8) for g in build_eval_groups(dialogues, seed=s)]
    return {"root": root, "train": small, "groups": write_jsonl(groups, root / "groups.jsonl")}


@pytest.fixture(scope="module")
def student(tiny_setup: dict[str, Path], small_data: dict[str, Path]) -> tuple[Path, dict[str, float]]:
    """A student trained without a teacher on the 12 dialogues."""
    out = small_data["root"] / "student"
    metrics = run_distillation.run(
        [
            "--model_name_or_path", str(tiny_setup["model"]),
            "--train_files", str(small_data["train"]),
            "--test_groups", str(small_data["groups"]),
            "--output_dir", str(out),
            "--do_train", "--do_predict", "--teacher_weight", "0",
            "--negatives_per_positive", "3", "--hard_negative_ratio", "0",
            "--max_steps", "150", "--learning_rate", "1e-3", "--per_device_train_batch_size", "16",
            "--save_steps", "150", "--seed", "3",
            *COMMON,
        ]
    )  # fmt: skip
    return out, metrics


def test_towers_share_weights_when_asked(tiny_setup: dict[str, Path]) -> None:
    shared = BertBiEncoder.from_pretrained(tiny_setup["model"])
    separate = BertBiEncoder.from_pretrained(tiny_setup["model"], shared_towers=False)
    assert shared.reply_encoder is shared.bert and shared.reply_bert is None
    assert separate.reply_encoder is not separate.bert
    count = sum(p.numel() for p in shared.parameters())
    assert sum(p.numel() for p in separate.parameters()) == 2 * count
    # both towers of the separate model start from the checkpoint, in tensors of their own
    for a, b in zip(separate.bert.parameters(), separate.reply_bert.parameters(), strict=True):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
    ids = torch.tensor([[2, 10, 11, 3]])
    mask = torch.ones_like(ids)
    # a step on the reply side alone moves the context tower only when the towers are shared
    for model, moves in ((shared, True), (separate, False)):
        before = model.encode_context(ids, mask).detach()
        model.encode_reply(ids, mask).sum().backward()
        torch.optim.SGD(model.parameters(), lr=1.0).step()
        assert (not torch.allclose(before, model.encode_context(ids, mask))) == moves
    # the choice survives save and load
    separate.save_pretrained(tiny_setup["root"] / "separate")
    reloaded = BertBiEncoder.from_pretrained(tiny_setup["root"] / "separate")
    assert reloaded.reply_bert is not None
    assert torch.equal(
        reloaded.reply_bert.embeddings.word_embeddings.weight, separate.reply_bert.embeddings.word_embeddings.weight
    )


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
def test_index_top_k_equals_brute_force(backend: str, tmp_path: Path) -> None:
    if backend == "faiss" and not faiss_available():
        pytest.fail("faiss-cpu is a declared extra ([retrieval]) that `make test` installs")
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(1000, 16)).astype(np.float32)
    queries = rng.normal(size=(7, 16)).astype(np.float32)
    index = ReplyIndex(vectors, [str(i) for i in range(1000)])
    expected = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :50]
    from ko_mrs import retrieval

    retrieval_block = retrieval.NUMPY_BLOCK
    retrieval.NUMPY_BLOCK = 128  # several blocks, so the merge across blocks is what is tested
    try:
        scores, ids = index.search(queries, 50, backend=backend)
    finally:
        retrieval.NUMPY_BLOCK = retrieval_block
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ vectors.T, expected, axis=1), rtol=1e-5)
    assert index.search(queries, 5000, backend=backend)[1].shape == (7, 1000)  # k above the pool: the whole pool


def test_index_streams_saves_and_drops_repeats(tiny_setup: dict[str, Path], tmp_path: Path) -> None:
    encoder = TextEncoder(BertBiEncoder.from_pretrained(tiny_setup["model"]), _tokenizer(tiny_setup["model"]))
    replies = list(read_reply_pool(tiny_setup["test"]))
    index = ReplyIndex.build(encoder, iter(replies), tmp_path / "index", chunk_size=7, show_progress=False)
    distinct = list(dict.fromkeys(replies))
    assert index.texts == distinct and index.meta["repeats_dropped"] == len(replies) - len(distinct)
    np.testing.assert_allclose(index.embeddings, encoder.embed_replies(distinct), atol=1e-5)  # chunks = one pass
    assert [p.name for p in tmp_path.iterdir()] == ["index"]  # no temporary folder left
    context = ["오늘 뭐 해?"]
    hits = index.hits(encoder.embed_contexts([context]), 5)
    brute = np.argsort(-(np.asarray(index.embeddings) @ encoder.embed_contexts([context])[0]), kind="stable")[:5]
    assert [h.reply_id for h in hits] == brute.tolist() and hits[0].text == distinct[brute[0]]


def _tokenizer(model: Path):
    tokenizer = AutoTokenizer.from_pretrained(model)
    add_eot_token(tokenizer)
    return tokenizer


def test_teacher_score_cache_is_keyed_by_teacher_and_data(
    tiny_setup: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    teacher_a = save_cross_encoder(tiny_setup["model"], tmp_path / "teacher-a", seed=0)
    teacher_b = save_cross_encoder(tiny_setup["model"], tmp_path / "teacher-b", seed=1)
    tokenizer = _tokenizer(tiny_setup["model"])
    dialogues, _ = read_dialogues(tiny_setup["validation"])
    tokenized = tokenize_dialogues(dialogues, tokenizer)
    pool = DialoguePool(tokenized)

    def rows(seed: int):
        return build_pairs(
            tokenized, pool, negatives_per_positive=3, seed=seed, listwise=True, sampler=NegativeSampler(pool)
        )

    from ko_mrs import distillation

    loads = []
    real_load = distillation.load_teacher
    monkeypatch.setattr(distillation, "load_teacher", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    first = add_teacher_scores(rows(0), dialogues, str(teacher_a))
    assert loads == [str(teacher_a)] and len(first[0]["teacher_scores"]) == 4
    again = add_teacher_scores(rows(0), dialogues, str(teacher_a))  # same teacher, same rows: read from the cache
    assert loads == [str(teacher_a)] and again["teacher_scores"] == first["teacher_scores"]
    assert again._fingerprint == first._fingerprint
    other_teacher = add_teacher_scores(rows(0), dialogues, str(teacher_b))
    assert loads[-1] == str(teacher_b) and other_teacher["teacher_scores"] != first["teacher_scores"]
    other_rows = add_teacher_scores(rows(1), dialogues, str(teacher_a))
    assert len(loads) == 3 and other_rows._fingerprint not in (first._fingerprint, other_teacher._fingerprint)
    # the scores are the teacher's own: ResponseSelector's log-odds on the same pairs
    from ko_mrs.ranking import ResponseSelector

    selector = ResponseSelector.from_pretrained(str(teacher_a), device="cpu")
    row = first[0]
    turns = dialogues[row["dialogue"]]["utterances"][row["start"] : row["position"]]
    texts = [
        dialogues[d]["utterances"][p] for d, p in zip(row["candidate_dialogue"], row["candidate_position"], strict=True)
    ]
    probabilities = torch.sigmoid(torch.tensor(row["teacher_scores"])).tolist()
    assert probabilities == pytest.approx(selector.score(turns, texts), abs=1e-4)


def test_distillation_losses() -> None:
    teacher = torch.tensor([[3.0, 1.0, 0.0, -1.0]])
    assert float(listwise_kl(teacher, teacher)) == pytest.approx(0.0, abs=1e-6)
    assert float(listwise_kl(teacher + 5.0, teacher)) == pytest.approx(0.0, abs=1e-6)  # a shift: same softmax
    assert float(listwise_kl(teacher.flip(-1), teacher)) > 0.5
    assert float(margin_mse(teacher + 5.0, teacher)) == pytest.approx(0.0)  # same margins
    assert float(margin_mse(teacher * 2, teacher)) > 0.5  # same order, other gaps: Margin-MSE still differs


def test_student_beats_untrained(student: tuple[Path, dict[str, float]], tiny_setup, small_data) -> None:
    out, metrics = student
    untrained = run_distillation.run(
        [
            "--model_name_or_path", str(tiny_setup["model"]),
            "--test_groups", str(small_data["groups"]),
            "--output_dir", str(small_data["root"] / "untrained"),
            "--do_predict", "--teacher_weight", "0", *COMMON,
        ]
    )  # fmt: skip
    assert metrics["test_num_groups"] == untrained["test_num_groups"] == 96
    assert metrics["test_r10@1"] > untrained["test_r10@1"] + 0.2, (metrics["test_r10@1"], untrained["test_r10@1"])
    assert (out / "README.md").is_file() and "distillation" in (out / "README.md").read_text(encoding="utf-8")
    # a similarity is no log-odds: the student's predictions carry no "probability" a reader could misread
    first = json.loads((out / "test_predictions.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"group_id", "candidate_index", "candidate", "label", "score"}


def test_trainer_logs_both_distillation_losses(tiny_setup: dict[str, Path], small_data, tmp_path: Path) -> None:
    teacher = save_cross_encoder(tiny_setup["model"], tmp_path / "teacher", seed=0)
    out = tmp_path / "kl"
    run_distillation.run(
        [
            "--model_name_or_path", str(tiny_setup["model"]), "--teacher_name_or_path", str(teacher),
            "--train_files", str(small_data["train"]), "--output_dir", str(out), "--do_train",
            "--negatives_per_positive", "3", "--hard_negative_ratio", "0.5", "--max_steps", "4",
            "--logging_steps", "2", "--save_steps", "4", "--per_device_train_batch_size", "4", *COMMON,
        ]
    )  # fmt: skip
    logs = [entry for entry in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in entry]
    assert logs and all({"contrastive_loss", "kl_loss", "margin_mse_loss"} <= set(entry) for entry in logs)
    for entry in logs:  # loss = contrastive + 1.0 * kl
        assert entry["loss"] == pytest.approx(entry["contrastive_loss"] + entry["kl_loss"], abs=2e-3)


def test_responder_retrieves_then_reranks(student, tiny_setup: dict[str, Path], tmp_path: Path) -> None:
    out, _ = student
    reranker = save_cross_encoder(tiny_setup["model"], tmp_path / "reranker", seed=0)
    responder = responder_module.Responder.from_pretrained(str(out), str(reranker), tiny_setup["test"], retrieve_k=20)
    context = ["주말에 뭐 해?", "등산 가려고"]
    rows = responder.respond(context, top_k=5)
    retrieved = responder.retrieve(context)
    assert len(rows) == 5 and len(retrieved) == 20
    assert [r.rerank_score for r in rows] == sorted((r.rerank_score for r in rows), reverse=True)
    for row in rows:  # each reply carries the retriever's own score and rank for it
        assert retrieved[row.retrieval_rank - 1].text == row.text
        assert retrieved[row.retrieval_rank - 1].score == pytest.approx(row.retrieval_score)
    saved = list((out / responder_module.INDEX_FOLDER).iterdir())
    assert len(saved) == 1  # the pool's index beside the retriever, reused by the next load
    again = responder_module.Responder.from_pretrained(str(out), str(reranker), tiny_setup["test"], retrieve_k=20)
    assert again.respond(context, top_k=5) == rows and list((out / responder_module.INDEX_FOLDER).iterdir()) == saved


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("missing_pool", "no such file"),
        ("pool_bad_line", "replies.jsonl:2"),
        ("empty_context", "context must contain at least one non-empty utterance"),
        ("input_no_context", "contexts.jsonl:1: context: missing field"),
        ("not_a_retriever", "is not a trained retriever"),
        ("no_model", "retriever not found"),
    ],
)
def test_mrs_respond_bad_input_is_one_line(
    case: str, expect: str, student, tiny_setup, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    out, _ = student
    reranker = save_cross_encoder(tiny_setup["model"], tmp_path / "reranker", seed=0)
    pool = tmp_path / "replies.jsonl"
    pool.write_text('{"text": "좋아요"}\n{"text": "싫어요"}\n', encoding="utf-8")
    retriever, extra = str(out), ["--context", "안녕?"]
    if case == "pool_bad_line":
        pool.write_text('{"text": "좋아요"}\n{"txt": "틀린 줄"}\n', encoding="utf-8")
    elif case == "missing_pool":
        pool = tmp_path / "nope.txt"
    elif case == "empty_context":
        extra = ["--context", " "]
    elif case == "input_no_context":
        contexts = tmp_path / "contexts.jsonl"
        contexts.write_text('{"ctx": ["안녕?"]}\n', encoding="utf-8")
        extra = ["--input", str(contexts), "--output", str(tmp_path / "responses.jsonl")]
    elif case == "not_a_retriever":
        retriever = str(reranker.parent / "teacher-like")
        save_cross_encoder(tiny_setup["model"], Path(retriever), seed=0)
    elif case == "no_model":
        retriever = str(tmp_path / "missing-model")
    argv = [
        "--retriever",
        retriever,
        "--reranker",
        str(reranker),
        "--pool",
        str(pool),
        "--index_dir",
        str(tmp_path / "ix"),
    ]
    code = responder_module.main([*argv, *extra])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("mrs-respond: error: "), err
    assert expect in err[0], err
    assert not (tmp_path / "responses.jsonl").exists()
