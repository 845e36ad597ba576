"""Tests for export.py and the exported backends of ResponseSelector (tiny random model, CPU, no network)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import hub_server
import numpy as np
import pytest
import torch
from hub_server import HubEnv
from huggingface_hub import HfApi, ModelCard
from test_ranking import CANDIDATES, CONTEXT, model_dir  # noqa: F401 - model_dir is a fixture

import run_fine_tuning
from ko_mrs import export, ranking
from ko_mrs.backends import MissingDependencyError
from ko_mrs.dialogue_data import build_eval_groups, read_dialogues, write_jsonl
from ko_mrs.ranking import ResponseSelector

INSTALL_HINT = 'pip install "ko-mrs[onnx]"'
local_hub = hub_server.local_hub
hub_env = hub_server.hub_env


@pytest.fixture(scope="module")
def exported(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(model_dir, out)
    assert export.main([str(out), "--format", "onnx", "--optimize", "O2", "--quantize", "int8"]) == 0
    export.export_onnx(out, quantize="int8")  # the portable int8 graph, from model.onnx
    return out


@pytest.fixture(scope="module")
def torch_selector(exported: Path) -> ResponseSelector:
    return ResponseSelector.from_pretrained(str(exported), device="cpu")


def test_export_writes_the_sentence_transformers_layout(exported: Path) -> None:
    names = sorted(path.name for path in (exported / "onnx").iterdir())
    assert names == ["model.onnx", "model_O2.onnx", "model_O2_qint8.onnx", "model_qint8.onnx"]


@pytest.mark.parametrize(
    ("backend", "file_name"), [("onnx", None), ("onnx", "model_O2.onnx"), ("openvino", None)]
)  # fmt: skip
def test_exported_fp32_scores_match_torch(
    exported: Path, torch_selector: ResponseSelector, backend: str, file_name: str | None
) -> None:
    selector = ResponseSelector.from_pretrained(str(exported), backend=backend, file_name=file_name)
    expected = torch_selector.score(CONTEXT, CANDIDATES)
    np.testing.assert_allclose(selector.score(CONTEXT, CANDIDATES), expected, atol=1e-5)
    order = [hit["corpus_id"] for hit in selector.rank(CONTEXT, CANDIDATES)]
    assert order == [hit["corpus_id"] for hit in torch_selector.rank(CONTEXT, CANDIDATES)]
    assert selector.max_length == torch_selector.max_length  # the settings come from the same config.json


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_int8_graph_loads_and_scores(exported: Path, torch_selector: ResponseSelector, backend: str) -> None:
    selector = ResponseSelector.from_pretrained(str(exported), backend=backend, quantized=True)
    scores = np.array(selector.score(CONTEXT, CANDIDATES))
    assert selector.model.path.name == "model_qint8.onnx"
    assert np.all((scores > 0) & (scores < 1))
    assert not np.allclose(scores, torch_selector.score(CONTEXT, CANDIDATES), atol=1e-6)  # it is another graph


def test_predict_has_the_cross_encoder_shape(torch_selector: ResponseSelector) -> None:
    pairs = [(CONTEXT, candidate) for candidate in CANDIDATES]
    scores = torch_selector.predict(pairs, batch_size=2)
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float32 and scores.shape == (len(CANDIDATES),)
    np.testing.assert_allclose(scores, torch_selector.score(CONTEXT, CANDIDATES), rtol=1e-6)
    tensor = torch_selector.predict(pairs, convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and torch.allclose(tensor, torch.from_numpy(scores))
    assert torch_selector.predict(pairs, convert_to_numpy=False) == pytest.approx(scores.tolist())
    assert torch_selector.predict((CONTEXT, CANDIDATES[0])) == pytest.approx(scores[0])  # one pair, one score
    # a string context is one turn; pairs of different contexts share batches
    mixed = torch_selector.predict([(CONTEXT[-1], CANDIDATES[0]), (CONTEXT, CANDIDATES[1])])
    assert mixed[0] == pytest.approx(torch_selector.score(CONTEXT[-1:], CANDIDATES[:1])[0])
    assert mixed[1] == pytest.approx(scores[1])
    with pytest.raises(TypeError, match=r"pairs\[1\] must be a \(context, candidate\) pair"):
        torch_selector.predict([(CONTEXT, "a"), "not a pair"])
    with pytest.raises(ValueError, match=r"pairs\[0\]: context must contain"):
        torch_selector.predict([([" "], "a")])


def test_batches_are_length_sorted_and_scores_come_back_in_input_order(
    torch_selector: ResponseSelector, monkeypatch: pytest.MonkeyPatch
) -> None:
    candidates = ["좋아", CANDIDATES[2], "내일 비가 온대.", "나는 도서관에서 책 읽었어.", "점심 메뉴 추천해 줘."]
    expected = [torch_selector.score(CONTEXT, [candidate])[0] for candidate in candidates]
    lengths: list[list[int]] = []
    score_batch = ResponseSelector._next_probabilities

    def recording(self: ResponseSelector, pairs: list) -> list[float]:
        lengths.append([len(ids) for ids, _ in pairs])
        return score_batch(self, pairs)

    monkeypatch.setattr(ResponseSelector, "_next_probabilities", recording)
    assert torch_selector.score(CONTEXT, candidates, batch_size=2) == pytest.approx(expected, abs=1e-6)
    flat = [length for batch in lengths for length in batch]
    assert len(lengths) == 3 and flat == sorted(flat, reverse=True)  # longest first, similar lengths together


def test_autocast_runs_the_torch_model_in_bfloat16(exported: Path, torch_selector: ResponseSelector) -> None:
    selector = ResponseSelector.from_pretrained(str(exported), device="cpu", autocast="bf16")
    scores = selector.score(CONTEXT, CANDIDATES)
    assert scores != torch_selector.score(CONTEXT, CANDIDATES)  # half-precision matmuls did run
    np.testing.assert_allclose(scores, torch_selector.score(CONTEXT, CANDIDATES), atol=0.05)
    with pytest.raises(ValueError, match="unknown autocast 'int4'"):
        ResponseSelector.from_pretrained(str(exported), autocast="int4")
    with pytest.raises(ValueError, match="apply to the torch backend, not 'onnx'"):
        ResponseSelector.from_pretrained(str(exported), backend="onnx", autocast="bf16")
    with pytest.raises(ValueError, match="apply to the torch backend, not 'openvino'"):
        ResponseSelector.from_pretrained(str(exported), backend="openvino", torch_dtype=torch.bfloat16)


def test_unknown_backend_is_a_one_line_error(exported: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match="unknown backend 'tensorrt': use one of 'torch', 'onnx', 'openvino'"):
        ResponseSelector.from_pretrained(str(exported), backend="tensorrt")
    with pytest.raises(ValueError, match="quantized and file_name choose an exported graph"):
        ResponseSelector.from_pretrained(str(exported), quantized=True)
    with pytest.raises(SystemExit) as exit_info:
        ranking.main(["--model", str(exported), "--backend", "tensorrt", "--context", "a", "--candidates", "b"])
    assert exit_info.value.code == 2 and "invalid choice: 'tensorrt'" in capsys.readouterr().err


def test_a_model_without_an_export_says_how_to_make_one(model_dir: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: F811
    with pytest.raises(OSError, match=f"has no onnx/model_qint8.onnx: export it with `mrs-export {model_dir}"):
        ResponseSelector.from_pretrained(str(model_dir), backend="onnx", quantized=True)
    assert ranking.main(["--model", str(model_dir), "--backend", "onnx", "--context", "a", "--candidates", "b"]) == 2
    assert "mrs-export" in capsys.readouterr().err


def test_missing_onnxruntime_gives_the_install_hint(
    exported: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    with pytest.raises(MissingDependencyError, match=f"needs the onnxruntime package.*{re.escape(INSTALL_HINT)}"):
        ResponseSelector.from_pretrained(str(exported), backend="onnx")
    args = ["--model", str(exported), "--backend", "onnx", "--context", "a", "--candidates", "b"]
    assert ranking.main(args) == 2
    err = capsys.readouterr().err
    assert INSTALL_HINT in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert export.main([str(exported), "--quantize", "int8"]) == 2
    assert INSTALL_HINT in capsys.readouterr().err


def test_export_cli_refuses_what_it_cannot_export(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert export.main([str(tmp_path / "missing")]) == 2
    assert "not a local model folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export.main([str(tmp_path), "--optimize", "O9"])


def test_a_corrupt_graph_is_a_one_line_error(
    model_dir: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    (broken / "onnx").mkdir()
    (broken / "onnx" / "model.onnx").write_bytes(b"not a graph")
    assert ranking.main(["--model", str(broken), "--backend", "onnx", "--context", "a", "--candidates", "b"]) == 2
    err = capsys.readouterr().err
    assert "onnx cannot load" in err and len(err.strip().splitlines()) == 1


def test_a_speaker_embedding_model_is_refused_in_one_line(
    model_dir: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    """Its graph would need speaker ids that no runner feeds: refused, not exported without them."""
    speaker_model = tmp_path / "model"
    shutil.copytree(model_dir, speaker_model)
    config = json.loads((speaker_model / "config.json").read_text(encoding="utf-8"))
    config["mrs_speaker_encoding"] = "embeddings"
    (speaker_model / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert export.main([str(speaker_model), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "speaker_ids embeddings cannot be exported" in err and len(err.strip().splitlines()) == 1
    assert not (speaker_model / "onnx" / "model.onnx").exists()


def test_fine_tuning_pushes_its_onnx_files_and_the_card_says_how_to_load_them(
    tiny_setup: dict[str, Path], hub_env: HubEnv, tmp_path: Path
) -> None:
    dialogues, _ = read_dialogues(tiny_setup["test"])
    groups = write_jsonl(build_eval_groups(dialogues, num_candidates=10, seed=0)[:4], tmp_path / "groups.jsonl")
    repo_id, out = hub_env.new_repo_id("onnx"), tmp_path / "run"
    run_fine_tuning.run(
        [
            "--model_name_or_path", str(tiny_setup["model"]),
            "--train_files", str(tiny_setup["train"]),
            "--test_groups", str(groups),
            "--output_dir", str(out),
            "--do_train", "--max_steps", "2", "--max_seq_length", "64", "--per_device_train_batch_size", "4",
            "--report_to", "none", "--disable_tqdm", "true",
            "--export_onnx", "--push_to_hub", "--hub_model_id", repo_id,
        ]
    )  # fmt: skip
    assert {"onnx/model.onnx", "onnx/model_qint8.onnx"} <= set(HfApi().list_repo_files(repo_id))
    card = ModelCard.load(repo_id).text
    assert f'ResponseSelector.from_pretrained("{repo_id}", backend="onnx", quantized=True)' in card
    # loaded back from the Hub, the fp32 graph scores as the local torch model does
    group = [json.loads(line) for line in groups.read_text(encoding="utf-8").splitlines()][0]
    hub_scores = ResponseSelector.from_pretrained(repo_id, backend="onnx").score(group["context"], group["candidates"])
    local = ResponseSelector.from_pretrained(str(out), device="cpu").score(group["context"], group["candidates"])
    np.testing.assert_allclose(hub_scores, local, atol=1e-5)
