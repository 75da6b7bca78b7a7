"""A local, in-memory stand-in for the Hugging Face Hub HTTP API, for tests.

It speaks enough of the Hub protocol for huggingface_hub 2.x, transformers 5.x and timm 1.x to
create repositories, push files and download them again without any network access.  Standard
library only.  Start it with ``serve()`` (daemon thread) or ``python tests/hub_server.py --port N``.

Routes (``{type}`` is ``models``, ``datasets`` or ``spaces``; ``{prefix}`` is empty, ``datasets/``
or ``spaces/``; ``{rev}`` is a branch name or a full commit sha; ``{repo}`` is ``org/name``)::

    GET      /api/whoami-v2                          the fixed user "test-user" (401 without a token)
    POST     /api/repos/create                       409 with {"url": ...} if the repo exists
    DELETE   /api/repos/delete
    POST     /api/validate-yaml                      every README is accepted
    GET      /api/{type}/{repo}[/revision/{rev}]     repo info: sha, siblings (with size and blobId)
    GET      /api/{type}/{repo}/tree/{rev}[/{path}]  ?recursive=true, ?expand=true (lastCommit)
    POST     /api/{type}/{repo}/paths-info/{rev}     form or JSON body {"paths": [...]}
    POST     /api/{type}/{repo}/preupload/{rev}      always uploadMode "regular" (no LFS/Xet)
    POST     /api/{type}/{repo}/commit/{branch}      NDJSON: header, file, deletedFile, deletedFolder
    POST     /api/{type}/{repo}/branch/{branch}      {"startingPoint": rev} optional; 409 if it exists
    GET      /api/{type}/{repo}/refs
    GET      /api/{type}/{repo}/commits/{rev}
    HEAD/GET /{prefix}{repo}/resolve/{rev}/{path}    X-Repo-Commit, ETag, Content-Length, Range

Missing things answer 404 with ``X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound``
and ``X-Error-Message``, which huggingface_hub turns into its typed errors.

Limits: no authentication or permissions (any token works, private repos are readable), no
LFS or Xet (files travel base64-encoded inside the commit payload, so keep them small), no
pull requests, tags, pagination or short shas, request bodies need a Content-Length (no chunked
uploads), and everything lives in memory only.  New repos get an initial commit holding a
``.gitattributes`` file, as on the real Hub.  A request the server cannot handle is answered 400
(not 500, which huggingface_hub would retry for half a minute) and its traceback goes to stderr.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

USER = "test-user"
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
GITATTRIBUTES = b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
Files = dict[str, bytes]


def git_blob_sha(data: bytes) -> str:
    """Git's object id of a blob: what the Hub reports as a regular file's oid and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class HubError(Exception):
    """An HTTP error answer; ``code`` goes to the X-Error-Code header."""

    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.commit = status, message, code, commit


@dataclass(frozen=True)
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    date: str
    files: Files  # full snapshot of the repo at this commit; never mutated


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created: str = field(default_factory=now_iso)
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, rev: str) -> Commit:
        oid = self.branches.get(rev, rev)
        if oid not in self.commits:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return self.commits[oid]


def tree_oid(files: Files, path: str) -> str | None:
    """Oid of a file, a made-up stable oid for a folder ("" is the root), or None if absent."""
    if path in files:
        return git_blob_sha(files[path])
    prefix = f"{path}/" if path else ""
    inside = sorted(f"{p} {git_blob_sha(d)}" for p, d in files.items() if p.startswith(prefix))
    return hashlib.sha1("\n".join(inside).encode()).hexdigest() if inside else None


class HubStore:
    """All repositories, guarded by one lock."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.RLock()
        self._counter = itertools.count()

    def get(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def add_commit(self, repo: Repo, branch: str, files: Files, title: str, message: str = "") -> Commit:
        parent = repo.branches.get(branch)
        seed = f"{repo.repo_id}\n{parent}\n{tree_oid(files, '')}\n{title}\n{next(self._counter)}\n{time.time()}"
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, title, message, now_iso(), files)
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid
        return commit


def entry(repo: Repo, commit: Commit, path: str, expand: bool) -> dict[str, Any] | None:
    """One tree / paths-info entry as the Hub formats it, or None when ``path`` does not exist."""
    oid = tree_oid(commit.files, path)
    if oid is None or not path:
        return None
    is_file = path in commit.files
    out: dict[str, Any] = {
        "type": "file" if is_file else "directory",
        "oid": oid,
        "size": len(commit.files[path]) if is_file else 0,
        "path": path,
    }
    if expand:  # walk back to the oldest commit in the run that still has this exact entry
        last = commit
        while last.parent is not None and tree_oid(repo.commits[last.parent].files, path) == oid:
            last = repo.commits[last.parent]
        out["lastCommit"] = {"id": last.oid, "title": last.title, "date": last.date}
    return out


def tree_listing(repo: Repo, commit: Commit, base: str, recursive: bool, expand: bool) -> list[dict[str, Any]]:
    base = base.strip("/")
    if base and (base in commit.files or tree_oid(commit.files, base) is None):
        raise HubError(404, f"{base} does not exist on {commit.oid}", "EntryNotFound", commit.oid)
    prefix = f"{base}/" if base else ""
    paths: set[str] = set()
    for path in commit.files:
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        depth = len(parts) if recursive else 1
        paths.update(prefix + "/".join(parts[:i]) for i in range(1, depth + 1))
    entries = (entry(repo, commit, p, expand) for p in sorted(paths))
    return [e for e in entries if e is not None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries a Content-Length
    server: HubServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    # -- plumbing -------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        method, url = self.command, urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]  # %2F inside a segment stays in it
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.base_url = f"http://{self.headers.get('Host') or '%s:%d' % self.server.server_address[:2]}"
        try:
            with self.server.store.lock:
                status, payload, headers = self._route(method, parts)
        except HubError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            if err.commit:
                headers["X-Repo-Commit"] = err.commit
            status, payload = err.status, {"error": err.message}
        except Exception as err:  # malformed request or a bug here: fail fast (see module docstring)
            traceback.print_exc()
            message = f"Local Hub server could not handle {method} {url.path}: {type(err).__name__}: {err}"
            status, payload, headers = 400, {"error": message}, {"X-Error-Message": message[:300]}
        if isinstance(payload, bytes):
            body, content_type = payload, "application/octet-stream"
        else:
            body, content_type = json.dumps(payload).encode(), "application/json; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():  # header values must be one line of latin-1
            self.send_header(name, " ".join(value.split()).encode("latin-1", "replace").decode("latin-1"))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_DELETE = _dispatch

    def _json(self) -> Any:
        return json.loads(self.body or b"{}")

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.base_url}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    # -- routing --------------------------------------------------------------------------------
    def _route(self, method: str, parts: list[str]) -> tuple[int, Any, dict[str, str]]:
        store = self.server.store
        if parts[0] != "api":  # /{prefix}{org}/{name}/resolve/{rev}/{path...}
            repo_type = parts[0][:-1] if parts[0] in ("datasets", "spaces") else "model"
            rest = parts[1:] if repo_type != "model" else parts
            if method in ("GET", "HEAD") and len(rest) >= 5 and rest[2] == "resolve":
                return self._resolve(store.get(repo_type, "/".join(rest[:2])), rest[3], "/".join(rest[4:]))
        elif parts[1:] == ["whoami-v2"] and method == "GET":
            return 200, self._whoami(), {}
        elif parts[1:] == ["repos", "create"] and method == "POST":
            return self._create_repo(store)
        elif parts[1:] == ["repos", "delete"] and method == "DELETE":
            data = self._json()
            repo_id = f"{data.get('organization') or USER}/{data['name']}"
            store.get(data.get("type") or "model", repo_id)
            del store.repos[(data.get("type") or "model", repo_id)]
            return 200, {}, {}
        elif parts[1:] == ["validate-yaml"] and method == "POST":
            return 200, {"errors": [], "warnings": []}, {}
        elif len(parts) >= 4 and parts[1] in REPO_TYPES:
            repo = store.get(REPO_TYPES[parts[1]], f"{parts[2]}/{parts[3]}")
            action, args = (parts[4], parts[5:]) if len(parts) > 4 else ("", [])
            if method == "GET" and (action, len(args)) in (("", 0), ("revision", 1)):
                return 200, self._repo_info(repo, repo.resolve(args[0] if args else "main")), {}
            if method == "GET" and action == "tree" and args:
                listing = tree_listing(
                    repo,
                    repo.resolve(args[0]),
                    "/".join(args[1:]),
                    self.query.get("recursive", "").lower() == "true",
                    self.query.get("expand", "").lower() == "true",
                )
                return 200, listing, {}
            if method == "POST" and action == "paths-info" and len(args) == 1:
                return 200, self._paths_info(repo, repo.resolve(args[0])), {}
            if method == "POST" and action == "preupload" and len(args) == 1:
                head = repo.resolve(args[0])
                answer = [
                    {
                        "path": f["path"],
                        "uploadMode": "regular",
                        "shouldIgnore": False,
                        "oid": git_blob_sha(head.files[f["path"]]) if f["path"] in head.files else None,
                    }
                    for f in self._json().get("files", [])
                ]
                return 200, {"files": answer, "commitOid": head.oid}, {}
            if method == "POST" and action == "commit" and len(args) == 1:
                return self._commit(store, repo, args[0])
            if method == "POST" and action == "branch" and len(args) == 1:
                if args[0] in repo.branches:
                    raise HubError(409, f"Reference refs/heads/{args[0]} already exists")
                start = repo.resolve(self._json().get("startingPoint") or "main")
                repo.branches[args[0]] = start.oid
                return 200, {}, {}
            if method == "GET" and action == "refs" and not args:
                branches = [
                    {"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid}
                    for name, oid in sorted(repo.branches.items())
                ]
                return 200, {"branches": branches, "converts": [], "tags": [], "pullRequests": []}, {}
            if method == "GET" and action == "commits" and len(args) == 1:
                return 200, self._history(repo, repo.resolve(args[0])), {}
        raise HubError(404, f"Not Found: {method} {self.path}")

    # -- handlers -------------------------------------------------------------------------------
    def _whoami(self) -> dict[str, Any]:
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            raise HubError(401, "Invalid credentials in Authorization header")
        access_token = {"displayName": "test", "role": "write", "createdAt": "2024-01-01T00:00:00.000Z"}
        return {
            "type": "user",
            "id": "0" * 24,
            "name": USER,
            "fullname": "Test User",
            "email": f"{USER}@example.com",
            "emailVerified": True,
            "isPro": False,
            "canPay": False,
            "avatarUrl": "",
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": access_token},
        }

    def _create_repo(self, store: HubStore) -> tuple[int, Any, dict[str, str]]:
        data = self._json()
        repo_type, name = data.get("type") or "model", data.get("name") or ""
        if repo_type not in URL_PREFIXES or not name or "/" in name:
            raise HubError(400, f"Invalid repo type or name: {repo_type!r} {name!r}")
        repo_id = f"{data.get('organization') or USER}/{name}"
        if (repo_type, repo_id) in store.repos:
            url = self._repo_url(store.repos[(repo_type, repo_id)])
            message = f"You already created this {repo_type} repo"
            return 409, {"error": message, "url": url}, {"X-Error-Message": message}
        private = bool(data.get("private")) or data.get("visibility") in ("private", "protected")
        repo = store.repos[(repo_type, repo_id)] = Repo(repo_type, repo_id, private)
        store.add_commit(repo, "main", {".gitattributes": GITATTRIBUTES}, "initial commit")
        return 200, {"url": self._repo_url(repo), "name": repo_id, "id": repo_id}, {}

    def _repo_info(self, repo: Repo, commit: Commit) -> dict[str, Any]:
        siblings = [
            {"rfilename": path, "size": len(data), "blobId": git_blob_sha(data)}
            for path, data in sorted(commit.files.items())
        ]
        return {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo.created,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }

    def _paths_info(self, repo: Repo, commit: Commit) -> list[dict[str, Any]]:
        if "json" in self.headers.get("Content-Type", ""):
            data = self._json()
            paths, expand = data.get("paths", []), bool(data.get("expand"))
        else:  # httpx form-encodes `data={"paths": [...], "expand": False}`
            form = parse_qs(self.body.decode())
            paths, expand = form.get("paths", []), form.get("expand", ["false"])[-1].lower() == "true"
        entries = (entry(repo, commit, p.strip("/"), expand) for p in paths)
        return [e for e in entries if e is not None]

    def _commit(self, store: HubStore, repo: Repo, branch: str) -> tuple[int, Any, dict[str, str]]:
        if self.query.get("create_pr") in ("1", "true"):
            raise HubError(400, "Pull requests are not supported by the local Hub server")
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        head = repo.resolve(branch)
        files, header = dict(head.files), {}
        for line in self.body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')!r}")
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound", head.oid)
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: d for p, d in files.items() if not p.startswith(prefix)}
            else:  # lfsFile and anything newer: this server never asks for LFS, so it is a client bug
                raise HubError(400, f"Unsupported commit operation {key!r} (no LFS on the local Hub server)")
        parent = header.get("parentCommit")
        if parent and parent != head.oid:
            raise HubError(412, f"Parent commit {parent} is not the head of {branch} ({head.oid})")
        commit = store.add_commit(repo, branch, files, header.get("summary", ""), header.get("description", ""))
        url = f"{self._repo_url(repo)}/commit/{commit.oid}"
        return 200, {"success": True, "commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None}, {}

    def _history(self, repo: Repo, commit: Commit | None) -> list[dict[str, Any]]:
        history = []
        while commit is not None:
            history.append(
                {
                    "id": commit.oid,
                    "title": commit.title,
                    "message": commit.message,
                    "date": commit.date,
                    "authors": [{"user": USER}],
                }
            )
            commit = repo.commits[commit.parent] if commit.parent else None
        return history

    def _resolve(self, repo: Repo, rev: str, path: str) -> tuple[int, Any, dict[str, str]]:
        commit = repo.resolve(rev)
        if path not in commit.files:
            raise HubError(404, "Entry not found", "EntryNotFound", commit.oid)
        data = commit.files[path]
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{git_blob_sha(data)}"', "Accept-Ranges": "bytes"}
        range_header = self.headers.get("Range", "")
        if range_header.startswith("bytes=") and "," not in range_header:
            start_text, _, end_text = range_header[6:].partition("-")
            start = int(start_text) if start_text else max(len(data) - int(end_text), 0)
            end = min(int(end_text), len(data) - 1) if start_text and end_text else len(data) - 1
            if start >= len(data) or start > end:
                raise HubError(416, f"Range {range_header} not satisfiable for {len(data)} bytes")
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return 206, data[start : end + 1], headers
        return 200, data, headers


class HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], verbose: bool = False) -> None:
        super().__init__(address, Handler)
        self.store = HubStore()
        self.verbose = verbose


def serve(host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> tuple[HubServer, str]:
    """Start a server on a daemon thread; stop it with ``server.shutdown(); server.server_close()``."""
    server = HubServer((host, port), verbose=verbose)
    threading.Thread(target=server.serve_forever, name="local-hub", daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    args = parser.parse_args()
    server = HubServer((args.host, args.port), verbose=not args.quiet)
    print(f"http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
