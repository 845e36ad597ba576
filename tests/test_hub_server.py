"""The REAL huggingface_hub / transformers clients against ``hub_server.LocalHub``.

Why: other tests rely on LocalHub standing in for the Hub (push, resume from Hub, model cards), so
this file pins down that the unmodified clients work against it, that nothing leaks to the network
or to the user's HF cache, and that a Hub outage looks like one (connection refused) to the clients.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import hub_server
import pytest
import torch
from hub_server import HubEnv, LocalHub, block_non_loopback_connections, point_clients_at
from huggingface_hub import (
    CommitOperationAdd,
    EvalResult,
    HfApi,
    ModelCard,
    ModelCardData,
    constants,
    create_branch,
    create_commit,
    create_repo,
    create_tag,
    file_exists,
    get_paths_info,
    hf_hub_download,
    list_repo_commits,
    list_repo_files,
    list_repo_refs,
    list_repo_tree,
    model_info,
    repo_exists,
    snapshot_download,
    upload_file,
    upload_folder,
    whoami,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import get_session
from huggingface_hub.utils import httpx as hf_httpx

# The fixtures, visible here whether or not tests/conftest.py also imports them.
local_hub = hub_server.local_hub
hub_env = hub_server.hub_env


@pytest.fixture(autouse=True)
def _no_unknown_routes(local_hub: LocalHub) -> Iterator[None]:
    """Every route a client used in a test must be implemented (gaps show up as failures here)."""
    local_hub.unknown_routes.clear()
    yield
    assert local_hub.unknown_routes == [], f"client used routes LocalHub lacks: {local_hub.unknown_routes}"


def _make_folder(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_clients_point_at_loopback_and_tmp_cache(hub_env: HubEnv) -> None:
    assert urlsplit(hub_env.endpoint).hostname == "127.0.0.1"
    assert constants.ENDPOINT == hub_env.endpoint
    assert constants.HUGGINGFACE_CO_URL_TEMPLATE.startswith(hub_env.endpoint + "/")
    assert HfApi().endpoint == hub_env.endpoint
    from huggingface_hub import hf_api

    assert hf_api.api.endpoint == hub_env.endpoint  # the instance behind huggingface_hub.whoami & co
    assert constants.is_offline_mode() is False and os.environ["HF_HUB_OFFLINE"] == "0"
    assert constants.HF_HUB_DISABLE_XET is True
    assert Path(constants.HF_HUB_CACHE) == hub_env.cache_dir
    assert Path(constants.HF_HOME) == hub_env.hf_home
    with pytest.raises(hf_httpx.ConnectError):  # the network guard
        get_session().get("https://huggingface.co/api/whoami-v2")


def test_whoami(hub_env: HubEnv) -> None:
    me = whoami()
    assert me["name"] == hub_env.user
    assert me["auth"]["accessToken"]["role"] == "write"
    with pytest.raises(HfHubHTTPError, match="Invalid user token"):
        whoami(token="hf_not_the_right_token")


def test_create_repo_exist_ok_and_private(hub_env: HubEnv) -> None:
    repo_id = hub_env.new_repo_id("create")
    url = create_repo(repo_id)
    assert url.repo_id == repo_id and url.endpoint == hub_env.endpoint
    assert create_repo(repo_id, exist_ok=True).repo_id == repo_id
    with pytest.raises(HfHubHTTPError) as err:
        create_repo(repo_id)
    assert err.value.response.status_code == 409

    # No namespace => the token's user, like on the Hub.
    name = hub_env.new_repo_id("bare").split("/")[1]
    assert create_repo(name).repo_id == f"{hub_env.user}/{name}"

    private_id = hub_env.new_repo_id("private")
    create_repo(private_id, private=True)
    assert model_info(private_id).private is True
    assert model_info(repo_id).sha is not None
    with pytest.raises(RepositoryNotFoundError):
        model_info(private_id, token=False)  # anonymous access to a private repo
    assert model_info(repo_id, token=False).id == repo_id
    assert repo_exists(repo_id) and not repo_exists(hub_env.new_repo_id("missing"))


def test_upload_file_folder_listing_and_delete_patterns(hub_env: HubEnv, tmp_path: Path) -> None:
    repo_id = hub_env.new_repo_id("upload")
    create_repo(repo_id)
    upload_file(path_or_fileobj=b"hello", path_in_repo="notes/old.txt", repo_id=repo_id)
    folder = _make_folder(
        tmp_path / "out",
        {
            "config.json": b'{"a": 1}',
            "last-checkpoint/optimizer.pt": os.urandom(2048),
            "last-checkpoint/trainer_state.json": b"{}",
        },
    )
    info = upload_folder(repo_id=repo_id, folder_path=folder, commit_message="Training in progress")
    assert info.oid == model_info(repo_id).sha
    assert list_repo_files(repo_id) == [
        ".gitattributes",
        "config.json",
        "last-checkpoint/optimizer.pt",
        "last-checkpoint/trainer_state.json",
        "notes/old.txt",
    ]
    top = {(e.path, type(e).__name__) for e in list_repo_tree(repo_id)}
    assert ("last-checkpoint", "RepoFolder") in top and ("config.json", "RepoFile") in top
    assert {e.path for e in list_repo_tree(repo_id, path_in_repo="last-checkpoint")} == {
        "last-checkpoint/optimizer.pt",
        "last-checkpoint/trainer_state.json",
    }
    expanded = list(list_repo_tree(repo_id, path_in_repo="notes", expand=True))
    assert expanded[0].last_commit is not None and expanded[0].last_commit.title.startswith("Upload")
    infos = {p.path: p for p in get_paths_info(repo_id, ["config.json", "last-checkpoint", "nope"])}
    assert set(infos) == {"config.json", "last-checkpoint"} and infos["config.json"].size == 8
    assert hub_env.hub.file_content(repo_id, "config.json") == b'{"a": 1}'

    # Re-uploading identical content is a no-op client-side (preupload returns the remote oid).
    n_commits = len(list_repo_commits(repo_id))
    assert upload_folder(repo_id=repo_id, folder_path=folder).oid == info.oid
    assert len(list_repo_commits(repo_id)) == n_commits

    # delete_patterns: remote files matching the patterns are removed in the same commit.
    (folder / "last-checkpoint" / "trainer_state.json").unlink()
    upload_folder(repo_id=repo_id, folder_path=folder, delete_patterns=["last-checkpoint/*", "*.txt"])
    assert list_repo_files(repo_id) == [".gitattributes", "config.json", "last-checkpoint/optimizer.pt"]
    assert [c.title for c in list_repo_commits(repo_id)][-1] == "initial commit"


def test_tree_pagination(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    repo_id = hub_env.new_repo_id("paginate")
    create_repo(repo_id)
    ops = [CommitOperationAdd(path_in_repo=f"d/f{i}.txt", path_or_fileobj=str(i).encode()) for i in range(5)]
    create_commit(repo_id, operations=ops, commit_message="many files")
    monkeypatch.setattr(hub_env.hub, "page_size", 2)
    before = len(hub_env.hub.requests)
    assert len(list_repo_files(repo_id)) == 6
    tree_calls = [p for _, p in hub_env.hub.requests[before:] if "/tree/" in p]
    assert len(tree_calls) == 4 and "cursor=" in tree_calls[-1]


def test_download_and_missing_entries(hub_env: HubEnv) -> None:
    repo_id = hub_env.new_repo_id("download")
    create_repo(repo_id)
    upload_file(path_or_fileobj=b'{"x": 2}', path_in_repo="sub/dir/config.json", repo_id=repo_id)
    path = Path(hf_hub_download(repo_id, "sub/dir/config.json"))
    assert json.loads(path.read_text()) == {"x": 2}
    assert hub_env.cache_dir in path.parents  # the per-test cache, not ~/.cache
    assert file_exists(repo_id, "sub/dir/config.json") and not file_exists(repo_id, "nope.json")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "missing.bin")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, "sub/dir/config.json", revision="no-such-branch")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(hub_env.new_repo_id("absent"), "config.json")


def test_snapshot_download_allow_patterns(hub_env: HubEnv, tmp_path: Path) -> None:
    repo_id = hub_env.new_repo_id("snapshot")
    create_repo(repo_id)
    folder = _make_folder(
        tmp_path / "src",
        {"model.safetensors": b"weights", "last-checkpoint/optimizer.pt": b"opt", "last-checkpoint/rng.pth": b"r"},
    )
    upload_folder(repo_id=repo_id, folder_path=folder)
    out = Path(snapshot_download(repo_id, allow_patterns="last-checkpoint/*", local_dir=tmp_path / "dl"))
    got = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and ".cache" not in p.parts)
    assert got == ["last-checkpoint/optimizer.pt", "last-checkpoint/rng.pth"]
    assert (out / "last-checkpoint" / "optimizer.pt").read_bytes() == b"opt"
    cached = Path(snapshot_download(repo_id, allow_patterns=["*.safetensors"]))
    assert (cached / "model.safetensors").read_bytes() == b"weights"


def test_branches_tags_and_pull_requests(hub_env: HubEnv) -> None:
    repo_id = hub_env.new_repo_id("refs")
    create_repo(repo_id)
    upload_file(path_or_fileobj=b"v1", path_in_repo="w.txt", repo_id=repo_id)
    create_branch(repo_id, branch="dev")
    create_branch(repo_id, branch="dev", exist_ok=True)
    upload_file(path_or_fileobj=b"v2", path_in_repo="w.txt", repo_id=repo_id, revision="dev")
    create_tag(repo_id, tag="v1.0")
    refs = list_repo_refs(repo_id, include_pull_requests=True)
    assert {b.name for b in refs.branches} == {"main", "dev"} and [t.name for t in refs.tags] == ["v1.0"]
    assert Path(hf_hub_download(repo_id, "w.txt", revision="dev")).read_bytes() == b"v2"
    assert Path(hf_hub_download(repo_id, "w.txt", revision="v1.0")).read_bytes() == b"v1"
    pr = upload_file(path_or_fileobj=b"v3", path_in_repo="w.txt", repo_id=repo_id, create_pr=True)
    assert pr.pr_revision == "refs/pr/1" and pr.pr_num == 1
    assert Path(hf_hub_download(repo_id, "w.txt", revision="refs/pr/1")).read_bytes() == b"v3"
    assert hub_env.hub.file_content(repo_id, "w.txt") == b"v1"  # main untouched by the PR
    with pytest.raises(HfHubHTTPError) as err:  # stale parent commit => 412 like the Hub
        create_commit(
            repo_id,
            operations=[CommitOperationAdd(path_in_repo="x.txt", path_or_fileobj=b"x")],
            commit_message="stale",
            parent_commit=list_repo_commits(repo_id)[-1].commit_id,
        )
    assert err.value.response.status_code == 412


def test_model_card_with_eval_results_roundtrip(hub_env: HubEnv) -> None:
    repo_id = hub_env.new_repo_id("card")
    create_repo(repo_id)
    data = ModelCardData(
        language="ko",
        license="apache-2.0",
        model_name="ko-mrs-test",
        eval_results=[
            EvalResult(
                task_type="text-ranking",
                dataset_type="ko-mrs/dialogues",
                dataset_name="Korean dialogues",
                metric_type="recall",
                metric_name="R10@1",
                metric_value=0.42,
            )
        ],
    )
    card = ModelCard.from_template(data, model_description="tiny")
    before = len(hub_env.hub.requests)
    card.push_to_hub(repo_id)
    assert ("POST", "/api/validate-yaml") in hub_env.hub.requests[before:]
    loaded = ModelCard.load(repo_id)
    assert loaded.data.model_name == "ko-mrs-test"
    result = loaded.data.eval_results[0]
    assert (result.metric_name, result.metric_value, result.dataset_type) == ("R10@1", 0.42, "ko-mrs/dialogues")


def test_transformers_push_and_from_pretrained(hub_env: HubEnv) -> None:
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, BertTokenizer

    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=100
    )
    model = BertModel(config).eval()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {tok: i for i, tok in enumerate(specials + [f"w{i}" for i in range(95)])}
    tokenizer = BertTokenizer(vocab=vocab)
    repo_id = hub_env.new_repo_id("tiny-bert")

    model.push_to_hub(repo_id)
    tokenizer.push_to_hub(repo_id)
    assert {"config.json", "model.safetensors", "README.md", "tokenizer_config.json"} <= set(list_repo_files(repo_id))

    loaded = AutoModel.from_pretrained(repo_id).eval()
    expected = model.state_dict()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    loaded_tok = AutoTokenizer.from_pretrained(repo_id)
    assert loaded_tok("w1 w2 w3")["input_ids"] == tokenizer("w1 w2 w3")["input_ids"] == [2, 6, 7, 8, 3]
    ids = torch.tensor([[2, 6, 7, 3]])
    with torch.no_grad():
        assert torch.equal(model(ids).last_hidden_state, loaded(ids).last_hidden_state)


def test_trainer_push_with_checkpoint_strategy(hub_env: HubEnv, tmp_path: Path) -> None:
    """Trainer(push_to_hub=True, hub_strategy="checkpoint") pushes model + last-checkpoint/ in the background."""
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=100
    )
    model = BertForSequenceClassification(config)
    rows = [{"input_ids": [2, 5 + i, 6 + i, 3], "attention_mask": [1] * 4, "labels": i % 2} for i in range(8)]
    repo_id = hub_env.new_repo_id("trainer")
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"),
        max_steps=2,
        per_device_train_batch_size=4,
        save_strategy="steps",
        save_steps=1,
        push_to_hub=True,
        hub_model_id=repo_id,
        hub_strategy="checkpoint",
        hub_always_push=True,  # else a checkpoint push is skipped while the previous one runs: flaky step
        report_to=[],
        use_cpu=True,
        logging_steps=1,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows)
    trainer.train()
    trainer.push_to_hub()
    files = set(list_repo_files(repo_id))
    assert {"config.json", "model.safetensors", "README.md", "last-checkpoint/optimizer.pt"} <= files
    assert not any(f.startswith("checkpoint-") for f in files)  # ignore_patterns honoured
    state = json.loads(hub_env.hub.file_content(repo_id, "last-checkpoint/trainer_state.json"))
    assert state["global_step"] == 2


def test_outage_then_recovery(hub_env: HubEnv) -> None:
    repo_id = hub_env.new_repo_id("outage")
    create_repo(repo_id)
    upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo_id)
    cached = hf_hub_download(repo_id, "config.json")
    with hub_env.hub.down():
        with pytest.raises(hf_httpx.ConnectError):
            whoami()
        with pytest.raises(hf_httpx.ConnectError):
            model_info(repo_id)
        assert hf_hub_download(repo_id, "config.json") == cached  # clients fall back to their cache
    assert whoami()["name"] == hub_env.user
    assert model_info(repo_id).sha == list_repo_commits(repo_id)[0].commit_id


def test_new_server_on_same_port_and_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process restart of the Hub: a new LocalHub on the same port and folder serves the same repos."""
    first = LocalHub(tmp_path / "store").start()
    port = first.port
    point_clients_at(first, monkeypatch, tmp_path / "hf_home")
    block_non_loopback_connections(monkeypatch)
    repo_id = f"{first.user}/persisted"
    create_repo(repo_id)
    upload_file(path_or_fileobj=b"kept", path_in_repo="a/b.txt", repo_id=repo_id)
    first.stop()
    with pytest.raises(hf_httpx.ConnectError):
        list_repo_refs(repo_id)
    second = LocalHub(tmp_path / "store", port=port).start()
    try:
        assert second.url == first.url
        assert list_repo_files(repo_id) == [".gitattributes", "a/b.txt"]
        assert Path(hf_hub_download(repo_id, "a/b.txt")).read_bytes() == b"kept"
    finally:
        second.close()


def test_unknown_route_is_a_logged_404(hub_env: HubEnv, capsys: pytest.CaptureFixture[str]) -> None:
    response = get_session().get(f"{hub_env.endpoint}/api/not-a-route")
    assert response.status_code == 404
    assert hub_env.hub.unknown_routes == [("GET", "/api/not-a-route")]
    assert "unknown route GET /api/not-a-route" in capsys.readouterr().err
    hub_env.hub.unknown_routes.clear()


def test_injected_server_errors_are_retried(hub_env: HubEnv) -> None:
    repo_id = hub_env.new_repo_id("flaky")
    create_repo(repo_id)
    hub_env.hub.fail_next(503, count=1, method="GET", path_contains="/tree/")
    assert list_repo_files(repo_id) == [".gitattributes"]  # http_backoff retried the 503


@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")  # huggingface_hub's LFS PUT
def test_lfs_mode_uploads_binaries_through_lfs(
    hub_env: HubEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hub.lfs = True``: binaries take the Git LFS batch + PUT path and come back with LFS metadata."""
    monkeypatch.setattr(hub_env.hub, "lfs", True)
    repo_id = hub_env.new_repo_id("lfs")
    create_repo(repo_id)
    weights = os.urandom(4096)
    folder = _make_folder(tmp_path / "src", {"model.safetensors": weights, "config.json": b"{}"})
    before = len(hub_env.hub.requests)
    upload_folder(repo_id=repo_id, folder_path=folder)
    assert any(p.endswith(".git/info/lfs/objects/batch") for _, p in hub_env.hub.requests[before:])
    entries = {e.path: e for e in list_repo_tree(repo_id)}
    assert entries["model.safetensors"].lfs is not None and entries["config.json"].lfs is None
    path = Path(hf_hub_download(repo_id, "model.safetensors"))
    assert path.read_bytes() == weights
    assert path.resolve().name == entries["model.safetensors"].lfs.sha256  # blob cached under its sha256
    n_commits = len(list_repo_commits(repo_id))
    upload_folder(repo_id=repo_id, folder_path=folder)  # unchanged LFS file => no new commit
    assert len(list_repo_commits(repo_id)) == n_commits


@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")  # huggingface_hub's LFS PUT
def test_lfs_mode_datasets_push_to_hub(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """datasets' push_to_hub deletes its parquet after preupload, so it only works through LFS."""
    import datasets

    monkeypatch.setattr(hub_env.hub, "lfs", True)
    repo_id = hub_env.new_repo_id("dataset")
    datasets.Dataset.from_dict({"context": ["안녕", "하세요"], "label": [1, 0]}).push_to_hub(repo_id)
    loaded = datasets.load_dataset(repo_id, split="train")
    assert loaded["context"] == ["안녕", "하세요"] and loaded["label"] == [1, 0]
