"""A local stand-in for GitHub's REST API on 127.0.0.1, serving the documented response shapes from real bare git
repositories (`<root>/<owner>/<repo>.git`), so the github backend is tested over real HTTP against real data.

Endpoints (GitHub REST API 2022-11-28 shapes, the fields the backend reads and the usual ones around them):
`/repos/{o}/{r}`, `/git/matching-refs/heads`, `/tags`, `/commits` (sha, path, since, until, per_page, page),
`/commits/{ref}` (files with patch, 300 per page), `/compare/{base}...{head}`, `/git/trees/{sha}[?recursive=1]`
(`truncated` when over `max_tree_entries`), `/git/blobs/{sha}` (JSON base64 or `vnd.github.raw+json`),
`/contributors`, `/languages` and `/search/code` (default branch only, files under 384 KB, `code_search` limit).

Every answer carries `x-ratelimit-*` headers; ETag + `If-None-Match` gives 304 without spending the limit; a
token outside `tokens` gets 401 "Bad credentials"; `scripted` answers (status, headers, body) are served first for
paths matching a regex (secondary limits, outages); `requests` records what was asked.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import subprocess
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from bastion.config import Settings

__all__ = ["GitHubApi", "Scripted", "github_api", "github_settings"]

SEARCH_MAX_FILE_BYTES = 384 * 1024
_STATUS = {"A": "added", "D": "removed", "M": "modified", "R": "renamed", "C": "copied", "T": "changed"}


@dataclass
class Scripted:
    """An answer served instead of the real one, `times` times, for GET paths matching `path` (a regex)."""

    path: str
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict[str, str])
    times: int = 1


@dataclass
class GitHubApi:
    """State of the running stand-in; tests change it between requests."""

    root: Path
    url: str = ""
    tokens: set[str] = field(default_factory=lambda: {"test-token"})
    max_tree_entries: int = 100_000
    core_limit: int = 5000
    core_remaining: int = 5000
    search_remaining: int = 10
    reset_at: int = field(default_factory=lambda: int(time.time()) + 3600)
    scripted: list[Scripted] = field(default_factory=list[Scripted])
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list[tuple[str, dict[str, str]]])
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paths(self, pattern: str = "") -> list[str]:
        """Request paths (with query) seen so far, optionally only those matching `pattern`."""
        with self.lock:
            return [path for path, _ in self.requests if re.search(pattern, path)]

    def git_dir(self, owner: str, repo: str) -> Path | None:
        path = self.root / owner / f"{repo}.git"
        return path if path.is_dir() else None


def _git(git_dir: Path, *args: str, ok: tuple[int, ...] = (0,)) -> bytes:
    result = subprocess.run(["git", *args], cwd=git_dir, capture_output=True, check=False, timeout=60)
    if result.returncode not in ok:
        raise LookupError(result.stderr.decode(errors="replace"))
    return result.stdout


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Repo:
    """GitHub JSON shapes computed from one bare repository."""

    def __init__(self, api: GitHubApi, owner: str, name: str, git_dir: Path) -> None:
        self.api, self.owner, self.name, self.git_dir = api, owner, name, git_dir
        self.base = f"{api.url}/repos/{owner}/{name}"

    def git(self, *args: str, ok: tuple[int, ...] = (0,)) -> bytes:
        return _git(self.git_dir, *args, ok=ok)

    def default_branch(self) -> str:
        return self.git("symbolic-ref", "--short", "HEAD").decode().strip()

    def resolve(self, ref: str) -> str | None:
        try:
            return self.git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").decode().strip() or None
        except LookupError:
            return None

    def info(self) -> dict[str, Any]:
        full = f"{self.owner}/{self.name}"
        return {
            "id": 1,
            "node_id": "R_1",
            "name": self.name,
            "full_name": full,
            "owner": {"login": self.owner, "type": "Organization"},
            "private": True,
            "html_url": f"https://github.example/{full}",
            "clone_url": f"https://github.example/{full}.git",
            "default_branch": self.default_branch(),
            "archived": False,
            "visibility": "private",
            "pushed_at": "2026-01-01T00:00:00Z",
        }

    def refs(self, prefix: str) -> list[tuple[str, str, str]]:
        """(ref, object sha, peeled commit sha) under `prefix`."""
        out = self.git("for-each-ref", "--format=%(refname)%00%(objectname)%00%(*objectname)", prefix)
        rows: list[tuple[str, str, str]] = []
        for line in out.decode().splitlines():
            ref, oid, peeled = line.split("\0")
            rows.append((ref, oid, peeled or oid))
        return rows

    def commit_json(self, sha: str) -> dict[str, Any]:
        return self.commits_json([sha])[0]

    def commits_json(self, shas: list[str]) -> list[dict[str, Any]]:
        """Commit objects in the order given, from one git process."""
        if not shas:
            return []
        fmt = "--format=%H%x00%T%x00%P%x00%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct%x00%B%x1e"
        out = self.git("log", "--no-walk=unsorted", fmt, *shas).decode()
        records = [record.lstrip("\n") for record in out.split("\x1e") if record.strip()]
        return [self._commit_record(record) for record in records]

    def _commit_record(self, record: str) -> dict[str, Any]:
        oid, tree, parents, an, ae, at, cn, ce, ct, body = record.split("\0", 9)
        return {
            "sha": oid,
            "node_id": f"C_{oid[:8]}",
            "url": f"{self.base}/commits/{oid}",
            "html_url": f"https://github.example/{self.owner}/{self.name}/commit/{oid}",
            "commit": {
                "author": {"name": an, "email": ae, "date": _iso(int(at))},
                "committer": {"name": cn, "email": ce, "date": _iso(int(ct))},
                "message": body.rstrip("\n"),  # GitHub drops the trailing newline
                "tree": {"sha": tree, "url": f"{self.base}/git/trees/{tree}"},
                "comment_count": 0,
                "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None},
            },
            "author": None,  # no GitHub account matches these e-mail addresses
            "committer": None,
            "parents": [{"sha": p, "url": f"{self.base}/commits/{p}"} for p in parents.split()],
        }

    def files(self, old: str | None, new: str) -> list[dict[str, Any]]:
        spec = [old, new] if old else ["--root", new]
        raw = self.git("diff-tree", "-r", "-M", "-z", "--raw", "--numstat", "--no-commit-id", *spec).split(b"\0")
        changes: list[tuple[str, str, str | None, str]] = []  # status, path, previous, new blob
        index = 0
        while index < len(raw) and raw[index].startswith(b":"):
            meta = raw[index].decode().split()
            letter = meta[4][0]
            if letter in "RC":
                changes.append((letter, raw[index + 2].decode(), raw[index + 1].decode(), meta[3]))
                index += 3
            else:
                changes.append((letter, raw[index + 1].decode(), None, meta[3]))
                index += 2
        files: list[dict[str, Any]] = []
        for letter, path, previous, blob in changes:
            added, deleted, index = self._numstat(raw, index)
            entry: dict[str, Any] = {
                "sha": blob if set(blob) != {"0"} else None,
                "filename": path,
                "status": _STATUS[letter],
                "additions": added or 0,
                "deletions": deleted or 0,
                "changes": (added or 0) + (deleted or 0),
                "blob_url": f"https://github.example/{self.owner}/{self.name}/blob/{new}/{path}",
                "raw_url": f"https://github.example/{self.owner}/{self.name}/raw/{new}/{path}",
                "contents_url": f"{self.base}/contents/{path}?ref={new}",
            }
            if previous is not None:
                entry["previous_filename"] = previous
            if added is not None:  # GitHub sends no patch for binary files
                patch = self._patch(old, new, path, previous)
                if patch:
                    entry["patch"] = patch
            files.append(entry)
        return files

    @staticmethod
    def _numstat(raw: list[bytes], index: int) -> tuple[int | None, int | None, int]:
        added, deleted, path = raw[index].decode().split("\t")
        index += 1
        if not path:
            index += 2  # a rename: both names follow
        if added == "-":
            return None, None, index
        return int(added), int(deleted), index

    def _patch(self, old: str | None, new: str, path: str, previous: str | None) -> str:
        spec = [old, new] if old else ["--root", new]
        paths = [path] if previous is None else [previous, path]
        text = self.git("diff-tree", "-p", "-M", "--no-commit-id", *spec, "--", *paths).decode("utf-8", "replace")
        start = text.find("\n@@ ")
        return text[start + 1 :].rstrip("\n") if start >= 0 else ""

    def log(self, sha: str, query: dict[str, str]) -> list[str]:
        args = ["log", "--format=%H", sha]
        if "since" in query:
            args.append(f"--since={query['since']}")
        if "until" in query:
            args.append(f"--until={query['until']}")
        if "author" in query:
            args += [f"--author=<{query['author']}>", "--fixed-strings", "--regexp-ignore-case"]
        args.append("--")
        if "path" in query:
            args.append(query["path"])
        return self.git(*args).decode().split()

    def tree(self, sha: str, recursive: bool) -> tuple[str, list[dict[str, Any]]]:
        tree_sha = self.git("rev-parse", "--verify", f"{sha}^{{tree}}").decode().strip()
        args = ["ls-tree", "-l", "-z", *(["-r", "-t"] if recursive else []), tree_sha]
        entries: list[dict[str, Any]] = []
        for record in self.git(*args).split(b"\0"):
            if not record:
                continue
            meta, _, path = record.partition(b"\t")
            mode, kind, oid, size = meta.decode().split()
            entry: dict[str, Any] = {"path": path.decode(), "mode": mode.rjust(6, "0"), "type": kind, "sha": oid}
            if kind == "blob":
                entry["size"] = int(size)
                entry["url"] = f"{self.base}/git/blobs/{oid}"
            elif kind == "tree":
                entry["url"] = f"{self.base}/git/trees/{oid}"
            entries.append(entry)
        return tree_sha, entries


class _Handler(BaseHTTPRequestHandler):
    api: GitHubApi  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing --------------------------------------------------------------------------------------------

    def _send(self, status: int, body: Any, *, resource: str = "core", headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        etag = f'W/"{hashlib.sha256(raw).hexdigest()[:32]}"'
        api = self.api
        with api.lock:
            if status == 200 and self.headers.get("If-None-Match") == etag:
                status, raw = 304, b""  # conditional hit: GitHub does not count it
            elif resource == "code_search":
                api.search_remaining = max(0, api.search_remaining - 1)
            else:
                api.core_remaining = max(0, api.core_remaining - 1)
            limit, remaining = (
                (10, api.search_remaining)
                if resource == "code_search"
                else (
                    api.core_limit,
                    api.core_remaining,
                )
            )
            reset = api.reset_at
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("ETag", etag)
        self.send_header("x-ratelimit-limit", str(limit))
        self.send_header("x-ratelimit-remaining", str(remaining))
        self.send_header("x-ratelimit-used", str(limit - remaining))
        self.send_header("x-ratelimit-reset", str(reset))
        self.send_header("x-ratelimit-resource", resource)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, status: int, message: str, **extra: Any) -> None:
        self._send(status, {"message": message, "documentation_url": "https://docs.github.example/rest", **extra})

    def _paged(self, items: list[Any], query: dict[str, str], path: str, *, default: int = 30) -> None:
        per_page = min(int(query.get("per_page", default)), 100)
        page = max(int(query.get("page", 1)), 1)
        start = (page - 1) * per_page
        headers: dict[str, str] = {}
        last = max(1, -(-len(items) // per_page))
        links = []
        rest = "&".join(f"{k}={v}" for k, v in query.items() if k not in ("page", "per_page"))
        base = f"{self.api.url}{path}?{rest + '&' if rest else ''}per_page={per_page}&page="
        if page < last:
            links += [f'<{base}{page + 1}>; rel="next"', f'<{base}{last}>; rel="last"']
        if page > 1:
            links += [f'<{base}1>; rel="first"', f'<{base}{page - 1}>; rel="prev"']
        if links:
            headers["Link"] = ", ".join(links)
        self._send(200, items[start : start + per_page], headers=headers)

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = {name: values[0] for name, values in parse_qs(split.query).items()}
        api = self.api
        with api.lock:
            api.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            scripted = next((s for s in api.scripted if s.times > 0 and re.search(s.path, path)), None)
            if scripted is not None:
                scripted.times -= 1
        authorization = self.headers.get("Authorization") or ""
        if authorization.removeprefix("Bearer ") not in api.tokens:
            self._error(401, "Bad credentials")
            return
        if scripted is not None:
            self._send(scripted.status, scripted.body, headers=scripted.headers)
            return
        try:
            self._route(path, query)
        except LookupError as exc:
            self._error(404, f"Not Found ({exc})")

    def _route(self, path: str, query: dict[str, str]) -> None:
        if path == "/search/code":
            self._search(query)
            return
        match = re.fullmatch(r"/repos/([^/]+)/([^/]+)(/.*)?", path)
        git_dir = self.api.git_dir(match[1], match[2]) if match else None
        if match is None or git_dir is None:
            self._error(404, "Not Found")
            return
        repo = _Repo(self.api, match[1], match[2], git_dir)
        rest = match[3] or ""
        if rest == "":
            self._send(200, repo.info())
        elif rest == "/git/matching-refs/heads" or rest == "/git/matching-refs/heads/":
            refs = repo.refs("refs/heads/")
            self._send(200, [self._ref(repo, ref, oid, "commit") for ref, oid, _ in refs])
        elif rest == "/tags":
            tags = [
                {
                    "name": ref.removeprefix("refs/tags/"),
                    "commit": {"sha": peeled, "url": f"{repo.base}/commits/{peeled}"},
                    "zipball_url": f"{repo.base}/zipball/{ref}",
                    "tarball_url": f"{repo.base}/tarball/{ref}",
                    "node_id": "T_1",
                }
                for ref, _, peeled in repo.refs("refs/tags/")
            ]
            self._paged(
                sorted(tags, key=lambda t: t["name"], reverse=True), query, f"/repos/{repo.owner}/{repo.name}/tags"
            )
        elif rest == "/commits":
            self._commits(repo, query)
        elif rest.startswith("/commits/"):
            self._commit(repo, rest.removeprefix("/commits/"), query)
        elif rest.startswith("/compare/"):
            self._compare(repo, rest.removeprefix("/compare/"), query)
        elif rest.startswith("/git/trees/"):
            self._tree(repo, rest.removeprefix("/git/trees/"), query)
        elif rest.startswith("/git/blobs/"):
            self._blob(repo, rest.removeprefix("/git/blobs/"))
        elif rest == "/contributors":
            self._contributors(repo, query)
        else:
            self._error(404, "Not Found")

    @staticmethod
    def _ref(repo: _Repo, ref: str, oid: str, kind: str) -> dict[str, Any]:
        return {
            "ref": ref,
            "node_id": "REF_1",
            "url": f"{repo.base}/git/{ref}",
            "object": {"sha": oid, "type": kind, "url": f"{repo.base}/git/commits/{oid}"},
        }

    # -- endpoints -------------------------------------------------------------------------------------------

    def _commits(self, repo: _Repo, query: dict[str, str]) -> None:
        sha = repo.resolve(query.get("sha") or repo.default_branch())
        if sha is None:
            self._error(404, "Not Found")
            return
        shas = repo.log(sha, query)
        per_page = min(int(query.get("per_page", 30)), 100)
        page = max(int(query.get("page", 1)), 1)
        window = shas[(page - 1) * per_page : page * per_page]
        self._paged_commits(repo, shas, window, query)

    def _paged_commits(self, repo: _Repo, shas: list[str], window: list[str], query: dict[str, str]) -> None:
        # Build JSON only for the page asked for, but let _paged compute the Link header over all of them.
        per_page = min(int(query.get("per_page", 30)), 100)
        page = max(int(query.get("page", 1)), 1)
        items: list[Any] = [None] * len(shas)
        start = (page - 1) * per_page
        for offset, body in enumerate(repo.commits_json(window)):
            items[start + offset] = body
        self._paged(items, query, f"/repos/{repo.owner}/{repo.name}/commits")

    def _commit(self, repo: _Repo, ref: str, query: dict[str, str]) -> None:
        sha = repo.resolve(ref)
        if sha is None:
            self._error(422, f"No commit found for SHA: {ref}")
            return
        if "vnd.github.sha" in (self.headers.get("Accept") or ""):
            self._send(200, sha.encode())
            return
        body = repo.commit_json(sha)
        parents = body["parents"]
        files = repo.files(parents[0]["sha"] if parents else None, sha)
        per_page = min(int(query.get("per_page", 300)), 300)
        page = max(int(query.get("page", 1)), 1)
        body["stats"] = {
            "additions": sum(f["additions"] for f in files),
            "deletions": sum(f["deletions"] for f in files),
            "total": sum(f["changes"] for f in files),
        }
        body["files"] = files[(page - 1) * per_page : page * per_page]
        headers: dict[str, str] = {}
        if page * per_page < len(files):
            headers["Link"] = (
                f'<{self.api.url}/repos/{repo.owner}/{repo.name}/commits/{sha}?page={page + 1}>; rel="next"'
            )
        self._send(200, body, headers=headers)

    def _compare(self, repo: _Repo, basehead: str, query: dict[str, str]) -> None:
        base_ref, sep, head_ref = basehead.partition("...")
        base, head = repo.resolve(base_ref), repo.resolve(head_ref)
        if not sep or base is None or head is None:
            self._error(404, "Not Found")
            return
        merge_base = repo.git("merge-base", base, head, ok=(0, 1)).decode().strip()
        if not merge_base:
            self._error(404, f"No common ancestor between {base_ref} and {head_ref}.")
            return
        behind, ahead = (int(n) for n in repo.git("rev-list", "--left-right", "--count", f"{base}...{head}").split())
        status = "identical" if base == head else "ahead" if behind == 0 else "behind" if ahead == 0 else "diverged"
        commits = list(reversed(repo.git("log", "--format=%H", f"{base}..{head}").decode().split()))
        per_page = min(int(query.get("per_page", 250)), 250)
        page = max(int(query.get("page", 1)), 1)
        files = repo.files(merge_base, head)
        body = {
            "url": f"{repo.base}/compare/{basehead}",
            "base_commit": repo.commit_json(base),
            "merge_base_commit": repo.commit_json(merge_base),
            "status": status,
            "ahead_by": ahead,
            "behind_by": behind,
            "total_commits": len(commits),
            "commits": repo.commits_json(commits[(page - 1) * per_page : page * per_page]),
            "files": files[:300] if page == 1 else [],  # GitHub: at most 300 files, on the first page only
        }
        self._send(200, body)

    def _tree(self, repo: _Repo, sha: str, query: dict[str, str]) -> None:
        recursive = query.get("recursive") not in (None, "", "0", "false")
        try:
            tree_sha, entries = repo.tree(sha, recursive)
        except LookupError:
            self._error(404, "Not Found")
            return
        # GitHub's limits (100,000 entries, 7 MB) only bite recursive listings; one directory level stays whole.
        truncated = recursive and len(entries) > self.api.max_tree_entries
        body = {
            "sha": tree_sha,
            "url": f"{repo.base}/git/trees/{tree_sha}",
            "tree": entries[: self.api.max_tree_entries] if truncated else entries,
            "truncated": truncated,
        }
        self._send(200, body)

    def _blob(self, repo: _Repo, sha: str) -> None:
        data = b""
        try:
            kind = repo.git("cat-file", "-t", sha).decode().strip()
            data = repo.git("cat-file", "blob", sha) if kind == "blob" else b""
        except LookupError:
            kind = ""
        if kind != "blob":
            self._error(404, "Not Found")
            return
        if "vnd.github.raw" in (self.headers.get("Accept") or ""):
            self._send(200, data)
            return
        body = {
            "sha": sha,
            "node_id": "B_1",
            "size": len(data),
            "url": f"{repo.base}/git/blobs/{sha}",
            "content": base64.encodebytes(data).decode(),
            "encoding": "base64",
        }
        self._send(200, body)

    def _contributors(self, repo: _Repo, query: dict[str, str]) -> None:
        out = repo.git("shortlog", "-sne", "HEAD").decode()
        rows: list[dict[str, Any]] = []
        for line in out.splitlines():
            count, _, who = line.strip().partition("\t")
            name, _, email = who.partition(" <")
            rows.append({"type": "Anonymous", "name": name, "email": email.rstrip(">"), "contributions": int(count)})
        self._paged(rows, query, f"/repos/{repo.owner}/{repo.name}/contributors")

    def _search(self, query: dict[str, str]) -> None:
        q = query.get("q", "")
        repos = re.findall(r"\brepo:(\S+)", q)
        phrase = re.search(r'"((?:[^"\\]|\\.)*)"', q)
        term = phrase[1].replace('\\"', '"') if phrase else re.sub(r"\b\w+:\S+", "", q).strip()
        if not repos or not term:
            self._send(422, {"message": "Validation Failed", "errors": [{"message": "query needs repo: and a term"}]},
                       resource="code_search")  # fmt: skip
            return
        items: list[dict[str, Any]] = []
        for full in repos:
            owner, _, name = full.partition("/")
            git_dir = self.api.git_dir(owner, name)
            if git_dir is None:
                continue
            repo = _Repo(self.api, owner, name, git_dir)
            head = repo.default_branch()
            listing = repo.git("grep", "-I", "-i", "-l", "-F", "-e", term, head, "--", ok=(0, 1)).decode().split()
            for hit in listing:
                path = hit.removeprefix(f"{head}:")
                size = int(repo.git("cat-file", "-s", f"{head}:{path}").decode())
                if size >= SEARCH_MAX_FILE_BYTES:
                    continue  # GitHub does not index files this large
                blob = repo.git("rev-parse", f"{head}:{path}").decode().strip()
                items.append(
                    {
                        "name": path.rsplit("/", 1)[-1],
                        "path": path,
                        "sha": blob,
                        "url": f"{repo.base}/contents/{path}?ref={head}",
                        "git_url": f"{repo.base}/git/blobs/{blob}",
                        "html_url": f"https://github.example/{full}/blob/{head}/{path}",
                        "repository": {"full_name": full, "name": name, "owner": {"login": owner}},
                        "score": 1.0,
                    }
                )
        per_page = min(int(query.get("per_page", 30)), 100)
        page = max(int(query.get("page", 1)), 1)
        body = {
            "total_count": len(items),
            "incomplete_results": False,
            "items": items[(page - 1) * per_page : page * per_page],
        }
        self._send(200, body, resource="code_search")


@contextlib.contextmanager
def github_api(root: Path) -> Generator[GitHubApi]:
    """Serve the bare repositories under `root` until the block ends; `api.url` is `http://127.0.0.1:PORT`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    api = GitHubApi(root=root, url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = type("Handler", (_Handler,), {"api": api})
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="test-github", daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def github_settings(api_url: str, data_dir: Path, repos: list[str], **github: Any) -> Settings:
    """Settings for the github backend against the stand-in, serving `repos` (owner/name)."""
    bootstrap = [{"url": f"https://github.com/{name}.git", "name": name} for name in repos]
    return Settings(
        data_dir=data_dir,
        repos={"backend": "github", "bootstrap": bootstrap},  # type: ignore[arg-type]
        github={"api_url": api_url, "token": "test-token", **github},  # type: ignore[arg-type]
    )
