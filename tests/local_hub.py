"""A local Hugging Face hub over HTTP: the part of the hub's API that huggingface_hub's
`snapshot_download` and `hf_hub_download`, and transformers' `from_pretrained`, read (repository
info with revision resolution, the file tree of a commit, file resolution by commit or branch).
Point HF_ENDPOINT at `LocalHub.url` and the download code runs for real, with commits as revisions.

Repositories are model or dataset repositories with commits (a folder's files each) and branches
that can move, as `main` does when a model is updated after someone pinned it."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class Repository:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit -> path -> content
    refs: dict[str, str] = field(default_factory=dict)  # branch -> commit

    def resolve(self, revision: str) -> str | None:
        revision = unquote(revision)
        if revision in self.commits:
            return revision
        return self.refs.get(revision)


class LocalHub:
    """Serves repositories on 127.0.0.1 on a free port while in a `with` block."""

    def __init__(self):
        self.repositories: dict[tuple[str, str], Repository] = {}  # (kind, repo id) -> repository
        self.requests: list[str] = []

    def commit(self, repo_id: str, files: dict[str, bytes] | Path, commit: str, kind: str = "model", branch="main"):
        """Add a commit of `files` (a folder, or path -> content) and point `branch` at it."""
        if isinstance(files, Path):
            files = {
                path.relative_to(files).as_posix(): path.read_bytes() for path in files.rglob("*") if path.is_file()
            }
        assert COMMIT.match(commit), commit
        repository = self.repositories.setdefault((kind, repo_id), Repository())
        repository.commits[commit] = dict(files)
        if branch:
            repository.refs[branch] = commit

    def __enter__(self) -> LocalHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub._answer(self, body=False)

            def do_GET(self):
                hub._answer(self, body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def _find(self, kind: str, rest: str, marker: str) -> tuple[Repository, str, str, str] | None:
        """(repository, repo id, revision, remainder) of '<id>/<marker>/<revision>/<remainder>'."""
        for (repo_kind, repo_id), repository in self.repositories.items():
            prefix = f"{repo_id}/{marker}/"
            if repo_kind == kind and rest.startswith(prefix):
                revision, _, remainder = rest[len(prefix) :].partition("/")
                return repository, repo_id, revision, remainder
        return None

    def _answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlsplit(handler.path).path).lstrip("/")
        self.requests.append(f"{handler.command} /{path}")
        api = re.match(r"api/(models|datasets)/(.*)$", path)
        if api:
            kind, rest = api.group(1)[:-1], api.group(2)
            for marker, answer in (("revision", self._info), ("tree", self._tree)):
                found = self._find(kind, rest, marker)
                if found:
                    return answer(handler, body, *found)
            return _send(handler, 404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"}, body)
        kind, rest = ("dataset", path.removeprefix("datasets/")) if path.startswith("datasets/") else ("model", path)
        found = self._find(kind, rest, "resolve")
        if found is None:
            return _send(handler, 404, b"not found", {"X-Error-Code": "RepoNotFound"}, body)
        repository, _, revision, name = found
        commit = repository.resolve(revision)
        if commit is None:
            return _send(handler, 404, b"no such revision", {"X-Error-Code": "RevisionNotFound"}, body)
        content = repository.commits[commit].get(name)
        if content is None:
            return _send(
                handler, 404, b"no such file", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, body
            )
        headers = {"X-Repo-Commit": commit, "ETag": f'"{_etag(content)}"', "Content-Type": "application/octet-stream"}
        return _send(handler, 200, content, headers, body)

    def _info(self, handler, body, repository: Repository, repo_id: str, revision: str, _rest: str):
        commit = repository.resolve(revision)
        if commit is None:
            return _send(handler, 404, b'{"error": "Invalid rev id"}', {"X-Error-Code": "RevisionNotFound"}, body)
        files = repository.commits[commit]
        info = {"id": repo_id, "sha": commit, "siblings": [{"rfilename": name} for name in sorted(files)]}
        return _send(handler, 200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)

    def _tree(self, handler, body, repository: Repository, _repo_id: str, revision: str, folder: str):
        commit = repository.resolve(revision)
        if commit is None:
            return _send(handler, 404, b'{"error": "Invalid rev id"}', {"X-Error-Code": "RevisionNotFound"}, body)
        entries = [
            {"type": "file", "path": name, "size": len(content), "oid": _etag(content)}
            for name, content in sorted(repository.commits[commit].items())
            if not folder or name.startswith(folder.rstrip("/") + "/")
        ]
        if folder and not entries:
            return _send(handler, 404, b'{"error": "no such folder"}', {"X-Error-Code": "EntryNotFound"}, body)
        return _send(handler, 200, json.dumps(entries).encode(), {"Content-Type": "application/json"}, body)


def _etag(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _send(handler: BaseHTTPRequestHandler, status: int, content: bytes, headers: dict, body: bool) -> None:
    handler.send_response(status)
    for key, value in (headers | {"Content-Length": str(len(content))}).items():
        handler.send_header(key, value)
    handler.end_headers()
    if body:
        handler.wfile.write(content)
