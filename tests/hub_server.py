"""A local stand-in for the Hugging Face Hub HTTP API, for tests.

Why: the project pushes checkpoints, model cards and tokenizers to the Hub and loads them back
(``push_to_hub``, ``Trainer(push_to_hub=True)``, ``snapshot_download``...). Tests must exercise the
*real* ``huggingface_hub`` / ``transformers`` clients without any network, so this module serves just
enough of the Hub API on ``127.0.0.1`` (stdlib only) for those clients to work unmodified.

Storage is a plain folder: ``<root>/repos/<type>s/<namespace>/<name>/repo.json`` holds the refs and the
commit history of one repo (each commit is a full ``path -> blob oid`` snapshot) and ``<root>/blobs/``
holds content-addressed file bodies keyed by their git blob sha1 (the ETag clients expect for regular,
non-LFS files). By default every file is uploaded as "regular" (base64 inside the NDJSON commit);
``LocalHub(lfs=True)`` (or ``hub.lfs = True``) adds the Git LFS basic-transfer path, which the Hub uses
for binaries and which ``datasets``' ``push_to_hub`` needs. Xet is never offered (clients get it disabled).

Usage in tests (``tests/conftest.py``): ``from hub_server import local_hub, hub_env  # noqa``. The
session-scoped ``local_hub`` fixture runs one server; the function-scoped ``hub_env`` fixture points
every client at it (env vars *and* the import-time constants) with a fresh, temporary HF cache.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import importlib.util
import json
import logging
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import pytest

logger = logging.getLogger("hub_server")

LOOPBACK_HOST = "127.0.0.1"
DEFAULT_USER = "local-user"
DEFAULT_TOKEN = "hf_localhubFakeTokenForTests000000000"
_API_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_REPO_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{7,40}$")
_PR_REF_RE = re.compile(r"^refs/pr/(\d+)$")
_LFS_CONTENT_TYPE = "application/vnd.git-lfs+json"

# What a freshly created repo on the real Hub contains (trimmed): an initial commit with this file.
# With ``LocalHub(lfs=True)`` these patterns (plus data files) are also the ones uploaded through LFS.
DEFAULT_GITATTRIBUTES = (
    "*.7z filter=lfs diff=lfs merge=lfs -text\n"
    "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    "*.ckpt filter=lfs diff=lfs merge=lfs -text\n"
    "*.h5 filter=lfs diff=lfs merge=lfs -text\n"
    "*.msgpack filter=lfs diff=lfs merge=lfs -text\n"
    "*.npy filter=lfs diff=lfs merge=lfs -text\n"
    "*.onnx filter=lfs diff=lfs merge=lfs -text\n"
    "*.pt filter=lfs diff=lfs merge=lfs -text\n"
    "*.pth filter=lfs diff=lfs merge=lfs -text\n"
    "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    "*.zip filter=lfs diff=lfs merge=lfs -text\n"
    "*tfevents* filter=lfs diff=lfs merge=lfs -text\n"
)
_LFS_PATTERNS = [line.split()[0] for line in DEFAULT_GITATTRIBUTES.splitlines()] + ["*.parquet", "*.arrow"]


class HubError(Exception):
    """An HTTP error answered the way the Hub does (status, JSON ``error`` body, ``X-Error-*`` headers)."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.extra = extra or {}  # more JSON body fields (the 409 of create_repo carries the repo "url")


def git_blob_oid(data: bytes) -> str:
    """Git blob sha1: the ETag/oid the Hub reports for regular files (and what the client compares)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now_iso() -> str:
    """Timestamp in the one format ``huggingface_hub.utils.parse_datetime`` accepts."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def _clean_path(path: str) -> str:
    """Validate a path inside a repo (no absolute paths, no ``..``), like the Hub refuses them."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


class RepoStore:
    """On-disk repos: refs + full-snapshot commits in ``repo.json``, content-addressed blobs.

    All access goes through one re-entrant lock: the server is threaded and the Trainer pushes
    from a background thread while the main thread may download.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.RLock()
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}
        for sub in ("repos", "blobs", "lfs"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    # -- blobs ----------------------------------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        oid = git_blob_oid(data)
        path = self.blob_path(oid)
        if not path.exists():
            tmp = path.with_suffix(f".tmp{uuid.uuid4().hex}")
            tmp.write_bytes(data)
            tmp.replace(path)
        return oid

    def blob_path(self, oid: str) -> Path:
        return self.root / "blobs" / oid

    def blob_size(self, oid: str) -> int:
        return self.blob_path(oid).stat().st_size

    # -- LFS objects: stored as blobs too, with a sha256 <-> git oid index -------------------------
    def put_lfs(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        oid = self.put_blob(data)
        (self.root / "lfs" / f"{sha256}.oid").write_text(oid)
        (self.root / "lfs" / f"{oid}.sha256").write_text(sha256)
        return sha256

    def lfs_blob(self, sha256: str) -> str | None:
        """Git oid of an uploaded LFS object, None if it was never uploaded."""
        path = self.root / "lfs" / f"{sha256}.oid"
        return path.read_text() if path.is_file() else None

    def lfs_sha256(self, oid: str) -> str | None:
        """sha256 of a blob that came in through LFS (None for regular files)."""
        path = self.root / "lfs" / f"{oid}.sha256"
        return path.read_text() if path.is_file() else None

    def entry(self, path: str, oid: str) -> dict[str, Any]:
        """A /tree or /paths-info file entry; LFS files carry their ``lfs`` block like on the Hub."""
        size = self.blob_size(oid)
        out: dict[str, Any] = {"type": "file", "oid": oid, "size": size, "path": path}
        if (sha256 := self.lfs_sha256(oid)) is not None:
            out["lfs"] = {"oid": sha256, "size": size, "pointerSize": 134}
        return out

    # -- repos ----------------------------------------------------------------------------------
    def repo_dir(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / f"{repo_type}s" / repo_id

    def get(self, repo_type: str, repo_id: str) -> dict[str, Any] | None:
        with self.lock:
            key = (repo_type, repo_id)
            if key not in self._cache:
                meta = self.repo_dir(repo_type, repo_id) / "repo.json"
                if not meta.is_file():
                    return None
                self._cache[key] = json.loads(meta.read_text(encoding="utf-8"))
            return self._cache[key]

    def save(self, repo: dict[str, Any]) -> None:
        with self.lock:
            folder = self.repo_dir(repo["type"], repo["id"])
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f"repo.json.tmp{uuid.uuid4().hex}"
            tmp.write_text(json.dumps(repo, indent=1, sort_keys=True), encoding="utf-8")
            tmp.replace(folder / "repo.json")
            self._cache[(repo["type"], repo["id"])] = repo

    def all_repos(self, repo_type: str) -> list[dict[str, Any]]:
        with self.lock:
            base = self.root / "repos" / f"{repo_type}s"
            ids = sorted(str(p.parent.relative_to(base)) for p in base.glob("*/*/repo.json"))
            return [r for r in (self.get(repo_type, i) for i in ids) if r is not None]

    def create(self, repo_type: str, repo_id: str, private: bool, author: str, gitattributes: bool) -> dict:
        with self.lock:
            repo: dict[str, Any] = {
                "id": repo_id,
                "type": repo_type,
                "private": private,
                "createdAt": _now_iso(),
                "counter": 0,
                "branches": {},
                "tags": {},
                "prs": {},
                "commits": {},
            }
            tree = {".gitattributes": self.put_blob(DEFAULT_GITATTRIBUTES.encode())} if gitattributes else {}
            oid = self.add_commit(repo, None, tree, "initial commit", "", author)
            repo["branches"]["main"] = oid
            self.save(repo)
            return repo

    def delete(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            shutil.rmtree(self.repo_dir(repo_type, repo_id), ignore_errors=True)
            self._cache.pop((repo_type, repo_id), None)

    def move(self, repo_type: str, from_id: str, to_id: str) -> None:
        with self.lock:
            repo = self.get(repo_type, from_id)
            assert repo is not None
            dest = self.repo_dir(repo_type, to_id)
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.repo_dir(repo_type, from_id).rename(dest)
            self._cache.pop((repo_type, from_id), None)
            repo["id"] = to_id
            self.save(repo)

    @staticmethod
    def add_commit(
        repo: dict[str, Any], parent: str | None, tree: dict[str, str], title: str, message: str, author: str
    ) -> str:
        """Record a commit (caller saves). The oid is a sha1 over a counter, so it is unique and 40-hex."""
        repo["counter"] += 1
        material = json.dumps([repo["id"], repo["counter"], parent, sorted(tree.items()), title, message])
        oid = hashlib.sha1(material.encode()).hexdigest()
        repo["commits"][oid] = {
            "parents": [parent] if parent else [],
            "tree": dict(sorted(tree.items())),
            "title": title,
            "message": message,
            "author": author,
            "date": _now_iso(),
        }
        return oid

    @staticmethod
    def resolve(repo: dict[str, Any], revision: str) -> str | None:
        """Branch, tag, ``refs/heads|tags/...``, ``refs/pr/N`` or a (possibly abbreviated) commit oid."""
        for refs in (repo["branches"], repo["tags"]):
            if revision in refs:
                return refs[revision]
        if revision.startswith("refs/heads/") and revision[11:] in repo["branches"]:
            return repo["branches"][revision[11:]]
        if revision.startswith("refs/tags/") and revision[10:] in repo["tags"]:
            return repo["tags"][revision[10:]]
        if (m := _PR_REF_RE.match(revision)) and m.group(1) in repo["prs"]:
            return repo["prs"][m.group(1)]
        if _COMMIT_RE.match(revision):
            if revision in repo["commits"]:
                return revision
            matches = [oid for oid in repo["commits"] if oid.startswith(revision)]
            if len(matches) == 1:
                return matches[0]
        return None


def _tree_oid(entries: list[tuple[str, str]]) -> str:
    return hashlib.sha1(json.dumps(entries).encode()).hexdigest()


class _HubHTTPServer(ThreadingHTTPServer):
    """Threaded server that remembers its open connections so ``stop()`` can cut them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], hub: LocalHub) -> None:
        self.hub = hub
        self.active: set[socket.socket] = set()
        self.active_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Broken pipes while the hub is being stopped are expected; keep them out of the test output.
        logger.debug("hub_server: error while handling %s:\n%s", client_address, traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    """Routes Hub API calls to ``LocalHub``; every unknown route is a logged 404."""

    server: _HubHTTPServer
    protocol_version = "HTTP/1.1"  # but "Connection: close" on every answer: no keep-alive to outlive stop()

    # -- plumbing -------------------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        with self.server.active_lock:
            self.server.active.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.server.active_lock:
            self.server.active.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("hub_server: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
        content_length: int | None = None,
    ) -> None:
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        self.send_header("Connection", "close")
        self.send_header("X-Request-Id", f"Root=local-{uuid.uuid4().hex[:12]}")
        for key, value in (headers or {}).items():
            self.send_header(key, value.encode("ascii", "replace").decode("ascii"))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _dispatch(self) -> None:
        hub = self.server.hub
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        segments = [s for s in split.path.split("/") if s]  # still percent-encoded
        hub.requests.append((self.command, self.path))
        try:
            body = self._read_body()
            injected = hub._take_injected_failure(self.command, split.path)
            if injected is not None:
                raise HubError(injected, f"Injected failure ({injected}) from LocalHub.fail_next")
            _Router(hub, self, segments, query, body).route()
        except HubError as err:
            headers = dict(err.headers)
            if err.code:
                headers["X-Error-Code"] = err.code
            headers["X-Error-Message"] = err.message
            self._json(err.status, {"error": err.message, **err.extra}, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a bug in the fake: make it loud, both server- and client-side
            logger.error("hub_server: internal error on %s %s\n%s", self.command, self.path, traceback.format_exc())
            with contextlib.suppress(OSError):
                self._json(500, {"error": f"LocalHub internal error: {exc!r}"})


class _Router:
    """One request: auth, repo lookup, and the per-route handlers (mirroring huggingface_hub 2.x)."""

    def __init__(
        self, hub: LocalHub, handler: _Handler, segments: list[str], query: dict[str, str], body: bytes
    ) -> None:
        self.hub = hub
        self.h = handler
        self.method = handler.command
        self.segments = segments
        self.query = query
        self.body = body
        self.store = hub.store

    # -- helpers --------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        return self.hub.url

    def user(self) -> str | None:
        """The authenticated user, None when anonymous; an unknown token is a 401 like on the Hub."""
        auth = self.h.headers.get("Authorization", "")
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token != self.hub.token:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.hub.user

    def require_user(self) -> str:
        user = self.user()
        if user is None:
            raise HubError(401, "You must be authenticated to access this endpoint (no token sent)")
        return user

    def json_body(self) -> dict[str, Any]:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from err

    def get_repo(self, repo_type: str, repo_id: str) -> dict[str, Any]:
        user = self.user()
        repo = self.store.get(repo_type, repo_id)
        if repo is None or (repo["private"] and user is None):
            status = 401 if user is None else 404
            raise HubError(status, "Repository not found", "RepoNotFound")
        return repo

    def commit_for(self, repo: dict[str, Any], revision: str) -> str:
        oid = self.store.resolve(repo, revision)
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return oid

    def repo_url(self, repo: dict[str, Any]) -> str:
        return f"{self.base}/{_URL_PREFIX[repo['type']]}{repo['id']}"

    def not_found_route(self) -> None:
        msg = f"LocalHub: unknown route {self.method} /{'/'.join(self.segments)}"
        self.hub.unknown_routes.append((self.method, self.h.path))
        logger.warning(msg)
        print(msg, file=sys.stderr)
        raise HubError(404, msg)

    # -- routing --------------------------------------------------------------------------------
    def route(self) -> None:
        s = [unquote(x) for x in self.segments]
        m = self.method
        if s[:1] == ["api"]:
            rest = s[1:]
            if rest == ["whoami-v2"] and m == "GET":
                return self.whoami()
            if rest == ["validate-yaml"] and m == "POST":
                return self.h._json(200, {"errors": [], "warnings": []})
            if rest == ["agent-harnesses"] and m == "GET":
                return self.h._json(200, {"standardEnvVars": [], "harnesses": {}})
            repo_actions = {
                ("POST", "create"): self.create_repo,
                ("DELETE", "delete"): self.delete_repo,
                ("POST", "move"): self.move_repo,
            }
            if len(rest) == 2 and rest[0] == "repos" and (m, rest[1]) in repo_actions:
                return repo_actions[(m, rest[1])]()
            if len(rest) == 1 and rest[0] in _API_TYPES and m == "GET":
                return self.list_repos(_API_TYPES[rest[0]])
            if len(rest) >= 3 and rest[0] in _API_TYPES:
                return self.repo_api(_API_TYPES[rest[0]], f"{rest[1]}/{rest[2]}", self.segments[4:])
            return self.not_found_route()
        repo_type = "model"
        if s[:1] and s[0] in _API_TYPES and s[0] != "models":
            repo_type, s = _API_TYPES[s[0]], s[1:]
        if len(s) == 2 and s[0] == "_lfs" and m == "PUT":
            return self.lfs_put(s[1])
        if len(s) == 6 and s[1].endswith(".git") and s[2:] == ["info", "lfs", "objects", "batch"] and m == "POST":
            return self.lfs_batch(repo_type, f"{s[0]}/{s[1][:-4]}")
        if len(s) >= 5 and s[2] == "resolve" and m in ("GET", "HEAD"):
            # revision is one (quoted) segment; the file path is the rest
            offset = len(self.segments) - len(s)
            raw = self.segments[offset + 3 :]
            return self.resolve_file(repo_type, f"{s[0]}/{s[1]}", unquote(raw[0]), [unquote(p) for p in raw[1:]])
        return self.not_found_route()

    def repo_api(self, repo_type: str, repo_id: str, raw_rest: list[str]) -> None:
        rest = [unquote(x) for x in raw_rest]
        m = self.method
        action = rest[0] if rest else None
        if action is None and m == "GET":
            return self.repo_info(repo_type, repo_id, "main")
        if action == "revision" and len(rest) == 2 and m == "GET":
            return self.repo_info(repo_type, repo_id, rest[1])
        if action == "tree" and len(rest) >= 2 and m == "GET":
            return self.tree(repo_type, repo_id, rest[1], "/".join(rest[2:]), raw_rest)
        if action == "paths-info" and len(rest) == 2 and m == "POST":
            return self.paths_info(repo_type, repo_id, rest[1])
        if action == "refs" and len(rest) == 1 and m == "GET":
            return self.refs(repo_type, repo_id)
        if action == "commits" and len(rest) == 2 and m == "GET":
            return self.commits(repo_type, repo_id, rest[1], raw_rest)
        if action == "preupload" and len(rest) == 2 and m == "POST":
            return self.preupload(repo_type, repo_id, rest[1])
        if action == "commit" and len(rest) == 2 and m == "POST":
            return self.commit(repo_type, repo_id, rest[1])
        if action == "branch" and len(rest) == 2 and m in ("POST", "DELETE"):
            return self.branch(repo_type, repo_id, rest[1])
        if action == "tag" and len(rest) == 2 and m in ("POST", "DELETE"):
            return self.tag(repo_type, repo_id, rest[1])
        if action == "settings" and len(rest) == 1 and m == "PUT":
            return self.settings(repo_type, repo_id)
        if action == "auth-check" and len(rest) == 1 and m == "GET":
            self.get_repo(repo_type, repo_id)
            return self.h._json(200, {})
        return self.not_found_route()

    # -- account / repo lifecycle -----------------------------------------------------------------
    def whoami(self) -> None:
        user = self.require_user()
        self.h._json(
            200,
            {
                "type": "user",
                "id": hashlib.sha1(user.encode()).hexdigest()[:24],
                "name": user,
                "fullname": "Local Test User",
                "email": f"{user}@localhost",
                "emailVerified": True,
                "canPay": False,
                "isPro": False,
                "periodEnd": None,
                "avatarUrl": "",
                "orgs": [{"type": "org", "name": org, "roleInOrg": "admin"} for org in self.hub.orgs],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": "local-test", "role": "write", "createdAt": _now_iso()},
                },
            },
        )

    def create_repo(self) -> None:
        user = self.require_user()
        payload = self.json_body()
        name = payload.get("name") or ""
        namespace = payload.get("organization") or user
        repo_type = payload.get("type") or "model"
        if repo_type not in _URL_PREFIX:
            raise HubError(400, f"Unsupported repo type {repo_type!r}")
        if not _REPO_NAME_RE.match(name) or "--" in name or ".." in name or len(name) > 96:
            raise HubError(400, f"Invalid repo name {name!r}")
        repo_id = f"{namespace}/{name}"
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        with self.store.lock:
            existing = self.store.get(repo_type, repo_id)
            if existing is not None:
                msg = f"You already created this {repo_type} repo"
                raise HubError(409, msg, extra={"url": self.repo_url(existing)})
            repo = self.store.create(repo_type, repo_id, private, user, self.hub.initial_gitattributes)
        self.h._json(200, {"url": self.repo_url(repo), "name": repo_id, "id": repo_id})

    def delete_repo(self) -> None:
        user = self.require_user()
        payload = self.json_body()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or user}/{payload.get('name')}"
        self.get_repo(repo_type, repo_id)
        self.store.delete(repo_type, repo_id)
        self.h._json(200, {})

    def move_repo(self) -> None:
        self.require_user()
        payload = self.json_body()
        repo_type = payload.get("type") or "model"
        self.get_repo(repo_type, payload["fromRepo"])
        if self.store.get(repo_type, payload["toRepo"]) is not None:
            raise HubError(409, "A repo with this name already exists")
        self.store.move(repo_type, payload["fromRepo"], payload["toRepo"])
        self.h._json(200, {})

    def settings(self, repo_type: str, repo_id: str) -> None:
        self.require_user()
        payload = self.json_body()
        with self.store.lock:
            repo = self.get_repo(repo_type, repo_id)
            if "visibility" in payload:
                repo["private"] = payload["visibility"] == "private"
            if "private" in payload:
                repo["private"] = bool(payload["private"])
            if "gated" in payload:
                repo["gated"] = payload["gated"]
            self.store.save(repo)
        self.h._json(200, {})

    # -- read APIs ------------------------------------------------------------------------------
    def _info_payload(self, repo: dict[str, Any], oid: str, blobs: bool) -> dict[str, Any]:
        commit = repo["commits"][oid]
        siblings = []
        for path, blob in commit["tree"].items():
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=self.store.blob_size(blob), blobId=blob)
                if (sha256 := self.store.lfs_sha256(blob)) is not None:
                    sibling["lfs"] = {"size": sibling["size"], "sha256": sha256, "pointerSize": 134}
            siblings.append(sibling)
        return {
            "_id": hashlib.sha1(repo["id"].encode()).hexdigest()[:24],
            "id": repo["id"],
            "modelId": repo["id"],
            "author": repo["id"].split("/")[0],
            "sha": oid,
            "lastModified": commit["date"],
            "createdAt": repo["createdAt"],
            "private": repo["private"],
            "gated": repo.get("gated", False),
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(self.store.blob_size(b) for b in set(commit["tree"].values())),
        }

    def repo_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        with self.store.lock:
            repo = self.get_repo(repo_type, repo_id)
            oid = self.commit_for(repo, revision)
            payload = self._info_payload(repo, oid, blobs=self.query.get("blobs", "").lower() in ("1", "true"))
        self.h._json(200, payload)

    def list_repos(self, repo_type: str) -> None:
        user = self.user()
        author, search = self.query.get("author"), self.query.get("search", "")
        out = []
        with self.store.lock:
            repos = [
                (r, self._info_payload(r, r["branches"]["main"], blobs=False)) for r in self.store.all_repos(repo_type)
            ]
        for repo, info in repos:
            if (repo["private"] and user is None) or (author and not repo["id"].startswith(f"{author}/")):
                continue
            if search.lower() not in repo["id"].lower():
                continue
            if self.query.get("full", "").lower() not in ("1", "true"):
                info.pop("siblings")
            out.append(info)
        limit = int(self.query.get("limit") or 0)
        self.h._json(200, out[:limit] if limit > 0 else out)

    def _entries(
        self, repo: dict[str, Any], oid: str, base: str, recursive: bool, expand: bool
    ) -> list[dict[str, Any]] | None:
        """Tree entries under ``base`` ("" = root); None when ``base`` is not a folder."""
        tree: dict[str, str] = repo["commits"][oid]["tree"]
        prefix = f"{base}/" if base else ""
        files: dict[str, str] = {}
        folders: dict[str, list[tuple[str, str]]] = {}
        for path, blob in tree.items():
            if not path.startswith(prefix):
                continue
            rel_parts = path[len(prefix) :].split("/")
            for depth in range(1, len(rel_parts)):
                folder = prefix + "/".join(rel_parts[:depth])
                folders.setdefault(folder, []).append((path, blob))
            files[path] = blob
        if base and not files:
            return None
        out: list[dict[str, Any]] = []
        for folder, content in folders.items():
            if recursive or "/" not in folder[len(prefix) :]:
                out.append({"type": "directory", "oid": _tree_oid(sorted(content)), "size": 0, "path": folder})
        for path, blob in files.items():
            if recursive or "/" not in path[len(prefix) :]:
                out.append(self.store.entry(path, blob))
        out.sort(key=lambda e: (e["path"].split("/")[:-1], e["type"] != "directory", e["path"]))
        if expand:
            for entry in out:
                entry["lastCommit"] = self._last_commit(repo, oid, entry["path"], entry["type"] == "directory")
        return out

    @staticmethod
    def _last_commit(repo: dict[str, Any], oid: str, path: str, is_dir: bool) -> dict[str, str]:
        """Walk first parents until the entry's content changes (what ``expand=True`` reports)."""

        def state(commit_oid: str) -> Any:
            tree = repo["commits"][commit_oid]["tree"]
            if is_dir:
                return sorted((p, b) for p, b in tree.items() if p.startswith(f"{path}/"))
            return tree.get(path)

        current = oid
        while repo["commits"][current]["parents"]:
            parent = repo["commits"][current]["parents"][0]
            if state(parent) != state(current):
                break
            current = parent
        commit = repo["commits"][current]
        return {"id": current, "title": commit["title"], "date": commit["date"]}

    def _paginated(self, items: list[Any], raw_rest: list[str], page_size: int) -> None:
        start = int(self.query.get("cursor") or 0)
        limit = min(int(self.query.get("limit") or page_size), page_size)
        page = items[start : start + limit]
        headers = {}
        if start + limit < len(items):
            query = {k: v for k, v in self.query.items() if k != "cursor"}
            query["cursor"] = str(start + limit)
            path = "/".join(self.segments[: len(self.segments) - len(raw_rest)] + raw_rest)
            headers["Link"] = f'<{self.base}/{path}?{urlencode(query)}>; rel="next"'
        self.h._json(200, page, headers)

    def tree(self, repo_type: str, repo_id: str, revision: str, base: str, raw_rest: list[str]) -> None:
        recursive = self.query.get("recursive", "").lower() in ("1", "true")
        expand = self.query.get("expand", "").lower() in ("1", "true")
        with self.store.lock:
            repo = self.get_repo(repo_type, repo_id)
            oid = self.commit_for(repo, revision)
            entries = self._entries(repo, oid, base.strip("/"), recursive, expand)
        if entries is None:
            raise HubError(404, f"{base} does not exist on {revision}", "EntryNotFound")
        self._paginated(entries, raw_rest, self.hub.page_size if not expand else min(50, self.hub.page_size))

    def paths_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        content_type = self.h.headers.get("Content-Type", "")
        if "json" in content_type:
            payload = self.json_body()
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:
            form = parse_qs(self.body.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), form.get("expand", ["False"])[-1].lower() in ("1", "true")
        with self.store.lock:
            repo = self.get_repo(repo_type, repo_id)
            oid = self.commit_for(repo, revision)
            tree = repo["commits"][oid]["tree"]
            out = []
            for path in dict.fromkeys(p.strip("/") for p in paths):
                if path in tree:
                    entry = self.store.entry(path, tree[path])
                elif any(p.startswith(f"{path}/") for p in tree):
                    content = sorted((p, b) for p, b in tree.items() if p.startswith(f"{path}/"))
                    entry = {"type": "directory", "oid": _tree_oid(content), "size": 0, "path": path}
                else:
                    continue
                if expand:
                    entry["lastCommit"] = self._last_commit(repo, oid, path, entry["type"] == "directory")
                out.append(entry)
        self.h._json(200, out)

    def refs(self, repo_type: str, repo_id: str) -> None:
        def fmt(kind: str, refs: dict[str, str]) -> list[dict[str, str]]:
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": o} for n, o in sorted(refs.items())]

        with self.store.lock:
            repo = self.get_repo(repo_type, repo_id)
            payload: dict[str, Any] = {
                "branches": fmt("heads", repo["branches"]),
                "converts": [],
                "tags": fmt("tags", repo["tags"]),
            }
            if self.query.get("include_prs"):
                payload["pullRequests"] = fmt("pr", repo["prs"])
        self.h._json(200, payload)

    def commits(self, repo_type: str, repo_id: str, revision: str, raw_rest: list[str]) -> None:
        with self.store.lock:
            repo = self.get_repo(repo_type, repo_id)
            oid: str | None = self.commit_for(repo, revision)
            items = []
            while oid is not None:
                commit = repo["commits"][oid]
                items.append(
                    {
                        "id": oid,
                        "title": commit["title"],
                        "message": commit["message"],
                        "date": commit["date"],
                        "authors": [{"user": commit["author"], "avatar": None}],
                    }
                )
                oid = commit["parents"][0] if commit["parents"] else None
        self._paginated(items, raw_rest, self.hub.page_size)

    def resolve_file(self, repo_type: str, repo_id: str, revision: str, path_parts: list[str]) -> None:
        path = "/".join(path_parts)
        with self.store.lock:
            repo = self.get_repo(repo_type, repo_id)
            oid = self.commit_for(repo, revision)
            blob = repo["commits"][oid]["tree"].get(path)
        if blob is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": oid})
        data = self.store.blob_path(blob).read_bytes()
        headers = {
            "ETag": f'"{blob}"',
            "X-Repo-Commit": oid,
            "Accept-Ranges": "bytes",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(path_parts[-1])}",
        }
        if (sha256 := self.store.lfs_sha256(blob)) is not None:  # served in place of the Hub's CDN redirect
            headers.update({"X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(data))})
        status = 200
        range_header = self.h.headers.get("Range")
        if range_header and (m := re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())):
            start = int(m.group(1)) if m.group(1) else max(len(data) - int(m.group(2) or 0), 0)
            end = int(m.group(2)) if m.group(1) and m.group(2) else len(data) - 1
            if start >= len(data) and len(data) > 0:
                raise HubError(
                    416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{len(data)}"}
                )
            headers["Content-Range"] = f"bytes {start}-{min(end, len(data) - 1)}/{len(data)}"
            data, status = data[start : end + 1], 206
        self.h._send(status, data, headers, content_type="application/octet-stream", content_length=len(data))

    # -- write APIs -----------------------------------------------------------------------------
    def _target_ref(self, repo: dict[str, Any], revision: str) -> tuple[str, str]:
        """Where a commit lands: ("branches", name) or ("prs", num); tags and bare oids are refused."""
        name = revision.removeprefix("refs/heads/")
        if name in repo["branches"]:
            return "branches", name
        if (m := _PR_REF_RE.match(revision)) and m.group(1) in repo["prs"]:
            return "prs", m.group(1)
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _wants_lfs(self, path: str, size: int, sample: bytes) -> bool:
        """With ``LocalHub(lfs=True)``: LFS like the Hub decides it (gitattributes pattern, binary or >=10MB)."""
        if not self.hub.lfs or size == 0:
            return False
        name = path.rsplit("/", 1)[-1]
        if any(fnmatch.fnmatch(name, pattern) for pattern in _LFS_PATTERNS) or size >= 10 * 1024 * 1024:
            return True
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return b"\0" in sample

    def preupload(self, repo_type: str, repo_id: str, revision: str) -> None:
        self.require_user()
        files = self.json_body().get("files", [])
        with self.store.lock:
            repo = self.get_repo(repo_type, repo_id)
            kind, name = self._target_ref(repo, revision)
            head = repo[kind][name]
            tree = repo["commits"][head]["tree"]
        answer = []
        for f in files:
            lfs = self._wants_lfs(f["path"], int(f.get("size") or 0), base64.b64decode(f.get("sample") or ""))
            remote = tree.get(f["path"])
            if remote is not None and lfs:  # the client compares sha256 for LFS files, git sha1 otherwise
                remote = self.store.lfs_sha256(remote)
            mode = "lfs" if lfs else "regular"
            answer.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False, "oid": remote})
        self.h._json(200, {"files": answer, "commitOid": head})

    def lfs_batch(self, repo_type: str, repo_id: str) -> None:
        """Git LFS batch API (basic transfer): an upload href on this server for each missing object."""
        self.require_user()
        self.get_repo(repo_type, repo_id)
        payload = self.json_body()
        if payload.get("operation") != "upload":
            raise HubError(400, "LocalHub only implements LFS uploads (downloads go through /resolve)")
        objects = []
        for obj in payload.get("objects", []):
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if self.store.lfs_blob(obj["oid"]) is None:
                entry["actions"] = {"upload": {"href": f"{self.base}/_lfs/{obj['oid']}", "header": {}}}
            objects.append(entry)
        self.h._send(
            200, json.dumps({"transfer": "basic", "objects": objects}).encode(), content_type=_LFS_CONTENT_TYPE
        )

    def lfs_put(self, sha256: str) -> None:
        if hashlib.sha256(self.body).hexdigest() != sha256:
            raise HubError(400, "LFS object content does not match its sha256")
        self.store.put_lfs(self.body)
        self.h._send(200)

    def commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        user = self.require_user()
        try:
            ops = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
        except ValueError as err:
            raise HubError(400, f"Invalid NDJSON commit payload: {err}") from err
        header = next((op["value"] for op in ops if op.get("key") == "header"), None)
        if header is None:
            raise HubError(400, "Missing header line in commit payload")
        create_pr = self.query.get("create_pr") in ("1", "true", "True")
        with self.store.lock:
            repo = self.get_repo(repo_type, repo_id)
            kind, name = self._target_ref(repo, revision)
            head = repo[kind][name]
            if header.get("parentCommit") and self.store.resolve(repo, header["parentCommit"]) != head:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            tree = dict(repo["commits"][head]["tree"])
            for op in ops:
                key, value = op.get("key"), op.get("value") or {}
                if key == "header":
                    continue
                if key == "file":
                    path = _clean_path(value["path"])
                    content = value.get("content", "")
                    raw = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                    tree[path] = self.store.put_blob(raw)
                elif key == "deletedFile":
                    if tree.pop(_clean_path(value["path"]), None) is None:
                        raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                elif key == "deletedFolder":
                    prefix = _clean_path(value["path"].rstrip("/")) + "/"
                    doomed = [p for p in tree if p.startswith(prefix)]
                    if not doomed:
                        raise HubError(404, "A folder with this name doesn't exist", "EntryNotFound")
                    for p in doomed:
                        del tree[p]
                elif key == "lfsFile":
                    blob = self.store.lfs_blob(value.get("oid", ""))
                    if blob is None:
                        raise HubError(422, f"LFS object {value.get('oid')} was never uploaded")
                    tree[_clean_path(value["path"])] = blob
                else:
                    raise HubError(400, f"Unknown commit operation {key!r}")
            for path in tree:  # a file cannot also be a folder
                parts = path.split("/")
                if any("/".join(parts[:i]) in tree for i in range(1, len(parts))):
                    raise HubError(400, f"Path conflict: a parent of {path!r} is a file")
            title = header.get("summary") or "Commit"
            new_oid = self.store.add_commit(repo, head, tree, title, header.get("description") or "", user)
            pr_url = None
            if create_pr:
                num = str(len(repo["prs"]) + 1)
                repo["prs"][num] = new_oid
                pr_url = f"{self.repo_url(repo)}/discussions/{num}"
            else:
                repo[kind][name] = new_oid
            self.store.save(repo)
        self.h._json(
            200,
            {
                "success": True,
                "commitOid": new_oid,
                "commitUrl": f"{self.repo_url(repo)}/commit/{new_oid}",
                "hookOutput": "",
                "pullRequestUrl": pr_url,
            },
        )

    def branch(self, repo_type: str, repo_id: str, branch: str) -> None:
        self.require_user()
        with self.store.lock:
            repo = self.get_repo(repo_type, repo_id)
            if self.method == "DELETE":
                if branch not in repo["branches"] or branch == "main":
                    raise HubError(404 if branch != "main" else 403, f"Cannot delete branch {branch}")
                del repo["branches"][branch]
            else:
                if branch in repo["branches"]:
                    raise HubError(409, f"Reference refs/heads/{branch} already exists")
                start = self.json_body().get("startingPoint") or "main"
                repo["branches"][branch] = self.commit_for(repo, start)
            self.store.save(repo)
        self.h._json(200, {})

    def tag(self, repo_type: str, repo_id: str, revision_or_tag: str) -> None:
        self.require_user()
        with self.store.lock:
            repo = self.get_repo(repo_type, repo_id)
            if self.method == "DELETE":
                if repo["tags"].pop(revision_or_tag, None) is None:
                    raise HubError(404, f"Tag {revision_or_tag} not found", "RevisionNotFound")
            else:
                tag = self.json_body().get("tag") or ""
                if not tag:
                    raise HubError(400, "Missing tag name")
                if tag in repo["tags"]:
                    raise HubError(409, f"Tag {tag} already exists")
                repo["tags"][tag] = self.commit_for(repo, revision_or_tag)
            self.store.save(repo)
        self.h._json(200, {})


@dataclass
class _InjectedFailure:
    status: int
    remaining: int
    method: str | None
    path_contains: str | None


class LocalHub:
    """A Hub look-alike on ``http://127.0.0.1:<port>``; ``stop()``/``start()`` simulate an outage.

    The port is ephemeral on the first ``start()`` and then reused, so clients configured with ``url``
    keep working after a restart; storage (``root``) survives restarts too.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        port: int = 0,
        user: str = DEFAULT_USER,
        token: str = DEFAULT_TOKEN,
        orgs: tuple[str, ...] = ("local-org",),
        initial_gitattributes: bool = True,
        lfs: bool = False,
    ) -> None:
        self._owns_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="local_hub_"))
        self.store = RepoStore(self.root)
        self.port = port
        self.user = user
        self.token = token
        self.orgs = orgs
        self.initial_gitattributes = initial_gitattributes
        # False: every file is "regular" (base64 in the commit). True: Hub-like LFS for binaries/patterns,
        # needed by clients that free the file after preupload (e.g. datasets' push_to_hub).
        self.lfs = lfs
        self.page_size = 1000  # what the Hub uses for /tree; lower it in a test to exercise pagination
        self.requests: list[tuple[str, str]] = []
        self.unknown_routes: list[tuple[str, str]] = []
        self._failures: list[_InjectedFailure] = []
        self._failures_lock = threading.Lock()
        self._server: _HubHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("LocalHub has never been started: no port yet")
        return f"http://{LOOPBACK_HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> LocalHub:
        if self._server is not None:
            return self
        server = _HubHTTPServer((LOOPBACK_HOST, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=f"local-hub-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket and cut open connections: clients then get 'connection refused'."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with server.active_lock:
            for conn in list(server.active):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def restart(self) -> LocalHub:
        self.stop()
        return self.start()

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """``with hub.down(): ...`` — the Hub is unreachable inside the block and back afterwards."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def fail_next(
        self, status: int = 503, count: int = 1, *, method: str | None = None, path_contains: str | None = None
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (e.g. 500/503 to test retries)."""
        with self._failures_lock:
            self._failures.append(_InjectedFailure(status, count, method, path_contains))

    def _take_injected_failure(self, method: str, path: str) -> int | None:
        with self._failures_lock:
            for failure in self._failures:
                if failure.remaining > 0 and failure.method in (None, method):
                    if failure.path_contains is None or failure.path_contains in unquote(path):
                        failure.remaining -= 1
                        return failure.status
        return None

    def file_content(self, repo_id: str, path: str, revision: str = "main", repo_type: str = "model") -> bytes:
        """Server-side read, to assert on what was pushed without going through a client."""
        repo = self.store.get(repo_type, repo_id)
        if repo is None:
            raise KeyError(repo_id)
        oid = self.store.resolve(repo, revision)
        if oid is None:
            raise KeyError(revision)
        return self.store.blob_path(repo["commits"][oid]["tree"][path]).read_bytes()

    def close(self) -> None:
        self.stop()
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------
# Client configuration
# ------------------------------------------------------------------------------------------------
def client_env(hub: LocalHub, hf_home: str | Path) -> dict[str, str]:
    """Environment for a *subprocess* client (a CLI run): env vars are all it reads, at import."""
    hf_home = Path(hf_home)
    return {
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": hub.token,
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "HF_ASSETS_CACHE": str(hf_home / "assets"),
        "HF_XET_CACHE": str(hf_home / "xet"),
        "HF_TOKEN_PATH": str(hf_home / "token"),
        "HF_DATASETS_CACHE": str(hf_home / "datasets"),
        "HF_MODULES_CACHE": str(hf_home / "modules"),
    }


_LEGACY_ENV = (
    "HUGGINGFACE_CO_STAGING",
    "HUGGINGFACE_HUB_CACHE",
    "HUGGINGFACE_ASSETS_CACHE",
    "HF_HUB_ENABLE_HF_TRANSFER",
)


def point_clients_at(hub: LocalHub, monkeypatch: pytest.MonkeyPatch, hf_home: str | Path) -> None:
    """Point in-process clients at ``hub`` with a private cache under ``hf_home`` (undone by monkeypatch).

    Env vars alone are not enough: ``huggingface_hub.constants`` reads them once at import, the module
    level ``huggingface_hub.hf_api.api`` (behind ``huggingface_hub.whoami``, ``create_repo``...) and
    transformers' shared ``hf_api()`` instance capture the endpoint when built, and a few modules copy
    cache paths into their own globals. All of those are patched here.

    Those modules are imported *before* the env is changed: one first imported under the patched env
    would record the local values as its "originals" and keep them after monkeypatch's undo.
    """
    import huggingface_hub.utils._cache_assets
    import huggingface_hub.utils._cache_manager
    import huggingface_hub.utils._http  # noqa: F401
    from huggingface_hub import constants, hf_api

    datasets_config = tf_hub = None
    if importlib.util.find_spec("transformers") is not None:
        import transformers.utils.hub as tf_hub
    if importlib.util.find_spec("datasets") is not None:
        import datasets.config as datasets_config

    hf_home = Path(hf_home)
    env = client_env(hub, hf_home)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in _LEGACY_ENV:
        monkeypatch.delenv(key, raising=False)
    for sub in ("hub", "assets", "xet"):
        (hf_home / sub).mkdir(parents=True, exist_ok=True)

    paths = {
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": env["HF_HUB_CACHE"],
        "HUGGINGFACE_HUB_CACHE": env["HF_HUB_CACHE"],
        "default_cache_path": env["HF_HUB_CACHE"],
        "HF_ASSETS_CACHE": env["HF_ASSETS_CACHE"],
        "HUGGINGFACE_ASSETS_CACHE": env["HF_ASSETS_CACHE"],
        "default_assets_cache_path": env["HF_ASSETS_CACHE"],
        "HF_XET_CACHE": env["HF_XET_CACHE"],
        "default_xet_cache_path": env["HF_XET_CACHE"],
        "HF_TOKEN_PATH": env["HF_TOKEN_PATH"],
        "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
        "CHECK_FOR_UPDATE_DONE_PATH": str(hf_home / ".check_for_update_done"),
        "CHECK_FOR_SKILL_UPDATE_DONE_PATH": str(hf_home / ".check_for_skill_update_done"),
        "AGENT_HARNESSES_PATH": str(hf_home / ".agent_harnesses.json"),
    }
    flags = {
        "ENDPOINT": hub.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": frozenset(constants.HF_URL_HOSTS) | {LOOPBACK_HOST},
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_UPDATE_CHECK": True,
        "HF_XET_HIGH_PERFORMANCE": False,
        "_staging_mode": False,
    }
    for name, value in {**paths, **flags}.items():
        monkeypatch.setattr(constants, name, value, raising=False)
    monkeypatch.setattr(hf_api.api, "endpoint", hub.url)
    # Modules that copied a constant into their own namespace at import time.
    copies = {
        "huggingface_hub.utils._cache_assets": {"HF_ASSETS_CACHE": env["HF_ASSETS_CACHE"]},
        "huggingface_hub.utils._cache_manager": {"HF_HUB_CACHE": env["HF_HUB_CACHE"]},
        "huggingface_hub.utils._git_credential": {"ENDPOINT": hub.url},
        "huggingface_hub.cli.auth": {"ENDPOINT": hub.url},
        "huggingface_hub.utils._detect_agent": {"_registry": None},
    }
    for module_name, attrs in copies.items():
        module = sys.modules.get(module_name)
        for attr, value in attrs.items():
            if module is not None and hasattr(module, attr):
                monkeypatch.setattr(module, attr, value)
    http_mod = sys.modules.get("huggingface_hub.utils._http")
    if http_mod is not None and hasattr(http_mod, "_HUB_ORIGINS"):
        monkeypatch.setattr(
            http_mod, "_HUB_ORIGINS", frozenset(http_mod._HUB_ORIGINS) | {http_mod._url_origin(hub.url)}
        )
    fs_mod = sys.modules.get("huggingface_hub.hf_file_system")
    if fs_mod is not None:
        fs_mod.HfFileSystem.clear_instance_cache()  # fsspec caches instances with their endpoint

    if tf_hub is not None:
        # transformers keeps one HfApi (endpoint frozen at creation): force a fresh one, and restore after.
        monkeypatch.setattr(tf_hub, "_hf_api", None, raising=False)
        monkeypatch.setattr(tf_hub, "HF_MODULES_CACHE", env["HF_MODULES_CACHE"], raising=False)
    if datasets_config is not None:
        for attr, value in {
            "HF_ENDPOINT": hub.url,
            "HUB_DATASETS_URL": hub.url + "/datasets/{repo_id}/resolve/{revision}/{path}",
            "HF_HUB_OFFLINE": False,
            "HF_DATASETS_OFFLINE": False,
            "HF_CACHE_HOME": str(hf_home),
            "HF_DATASETS_CACHE": Path(env["HF_DATASETS_CACHE"]),
        }.items():
            monkeypatch.setattr(datasets_config, attr, value, raising=False)


def block_non_loopback_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any TCP connection to a non-loopback host fail fast: tests must never reach the real Hub."""
    real_create_connection = socket.create_connection

    def guarded(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        host = str(address[0])
        if host not in (LOOPBACK_HOST, "localhost", "::1"):
            raise ConnectionRefusedError(f"hub_env: network access to {host!r} is blocked in tests")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


@dataclass
class HubEnv:
    """What ``hub_env`` yields: the running hub plus the client-side settings it installed."""

    hub: LocalHub
    endpoint: str
    token: str
    user: str
    hf_home: Path
    cache_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def new_repo_id(self, prefix: str = "repo") -> str:
        """A fresh ``user/name`` (the hub is session-wide, so names must not collide across tests)."""
        return f"{self.user}/{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def local_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    """One LocalHub for the whole session (storage in a pytest temp dir)."""
    hub = LocalHub(tmp_path_factory.mktemp("local_hub"))
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def hub_env(local_hub: LocalHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HubEnv]:
    """Point every HF client at ``local_hub`` for one test, with a throwaway cache; blocks real network."""
    if not local_hub.running:  # a previous test may have left it down
        local_hub.start()
    hf_home = tmp_path / "hf_home"
    point_clients_at(local_hub, monkeypatch, hf_home)
    block_non_loopback_connections(monkeypatch)
    yield HubEnv(
        hub=local_hub,
        endpoint=local_hub.url,
        token=local_hub.token,
        user=local_hub.user,
        hf_home=hf_home,
        cache_dir=hf_home / "hub",
        env=client_env(local_hub, hf_home),
    )
    if not local_hub.running:
        local_hub.start()
    fs_mod = sys.modules.get("huggingface_hub.hf_file_system")
    if fs_mod is not None:  # do not leave an HfFileSystem bound to the local endpoint in fsspec's cache
        fs_mod.HfFileSystem.clear_instance_cache()


@pytest.fixture(autouse=True)
def no_unknown_routes(local_hub: LocalHub) -> Iterator[None]:
    """Whatever the run scripts asked of the Hub, the stand-in must implement (else the test proves nothing).

    Autouse in every test module that binds it (``_no_unknown_routes = hub_server.no_unknown_routes``).
    """
    local_hub.unknown_routes.clear()
    yield
    assert local_hub.unknown_routes == [], f"client used routes LocalHub lacks: {local_hub.unknown_routes}"


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit path retries a refused connection 5 times over ~25 s; keep the retries, shorten the waits."""
    import functools

    import huggingface_hub._commit_api
    import huggingface_hub.lfs
    from huggingface_hub.utils import http_backoff

    quick = functools.partial(http_backoff, base_wait_time=0.01, max_wait_time=0.02)
    monkeypatch.setattr(huggingface_hub._commit_api, "http_backoff", quick)
    monkeypatch.setattr(huggingface_hub.lfs, "http_backoff", quick)
