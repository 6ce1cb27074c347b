"""A deployment built to be attacked: repositories full of canaries, symlinks that point out of the tree and into
denied paths, a branch and a pull-request ref the caller may not read, a policy with a deny rule that a broader
allow rule would otherwise satisfy, and an SDK client whose every response byte is kept for inspection.

The remotes are served over real smart HTTP and mirrored by the real sync code; the server is the whole ASGI app
under uvicorn on 127.0.0.1. Facts (SHAs, object ids) are read from git, never written in by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, Implementation
from starlette.applications import Starlette
from tests.support.git_http import serve_git_http
from tests.support.gitrepo import WorkRepo, git, make_bare_remote
from tests.support.served import ServedBastion, issue_key
from tests.support.server import serve_app

from bastion.app import create_app
from bastion.audit.event import AuditEvent
from bastion.config import Settings
from bastion.repos.sync import add_repository, sync_repository

__all__ = [
    "APP",
    "CLIENT_INFO",
    "POLICY",
    "VAULT",
    "VAULT_REASON",
    "Probe",
    "Prober",
    "Target",
    "TeeTransport",
    "deploy_target",
    "prober",
]

APP = {"owner": "acme", "repo": "app"}
VAULT = {"owner": "acme", "repo": "vault"}
VAULT_REASON = "denied by rule 'vault-locked': Credentials live here; ask #security"
CLIENT_INFO = Implementation(name="red-team", version="0.1")
SUBJECT = "mallory"

# The deny rule is the only thing between the caller and acme/vault: `eng-read` covers `acme/*`, so a spelling of
# the vault's name that slipped past the deny rule would be allowed by it (and the registry matches names
# case-insensitively). `tools/my` is allowed by an exact pattern that must not reach `tools/my.secret-repo`
# (seed 000's matcher stopped at the first '.', so its rule for `org/my` matched `org/my.secret-repo`).
POLICY = """\
version: 1
rules:
  - name: vault-locked
    effect: deny
    description: "Credentials live here; ask #security"
    repositories: ["acme/vault"]
    subjects: {users: ["*"]}

  - name: eng-read
    repositories: ["acme/*"]
    subjects: {groups: [eng]}
    operations: [read, search, diff, analyze]
    refs: [main, "release/*"]
    deny_paths: ["secrets/**"]

  - name: my-tool
    repositories: ["tools/my"]
    subjects: {groups: [eng]}
    operations: [read, search]
"""

# Secret contents: whole lines that must never appear in any response byte. Searches ask for a piece of a line
# (the query is echoed back), never for the whole line.
SECRET_LINE = "SECRET_TOKEN=prod-4f1c9a2b7e"
ENV_LINE = "DATABASE_URL=postgres://app:ENV-CANARY-91c2@db/app"
CONFIG_ENV_LINE = "API_KEY=CONFIG-ENV-CANARY-5d7e"
WIP_LINE = "WIP-CANARY-77aa: the unannounced acquisition"
PR_LINE = "PR-CANARY-e0f1: an unreviewed change"
VAULT_LINE = "VAULT-CANARY-c4d2 root credentials"
MY_SECRET_LINE = "MYSECRET-CANARY-0a9b"
OUTSIDE_LINE = "OUTSIDE-CANARY-3b8d lives outside every repository"


def _passwd_first_line() -> str:
    with contextlib.suppress(OSError):
        first = Path("/etc/passwd").read_text().splitlines()[0]
        if first:
            return first
    return "root:x:0:0:root:/root:/bin/bash"


PASSWD_LINE = _passwd_first_line()


@dataclass
class Target(ServedBastion):
    """The running deployment and the facts about what it serves."""

    settings: Settings
    app: Starlette
    url: str
    remotes: dict[str, Path]  # repository name -> served bare repository
    key: str
    outside_file: Path  # a file outside every repository, named by an absolute symlink in acme/app
    sha: dict[str, str] = field(default_factory=dict[str, str])  # label -> object id
    canaries: list[bytes] = field(default_factory=list[bytes])

    def mirror(self, name: str) -> Path:
        return self.settings.data_dir / "mirrors" / f"{name}.git"


def _when(day: int) -> datetime:
    return datetime(2026, 1, day, 12, 0, tzinfo=UTC)


def _build_app(work: WorkRepo, outside: Path, sha: dict[str, str]) -> None:
    work.write("README.md", "# App\n")
    work.write("src/app.py", "print('hello')\n")
    work.write(".env", ENV_LINE + "\n")
    work.write("config/.env", CONFIG_ENV_LINE + "\n")
    work.write("secrets/prod.env", SECRET_LINE + "\n")
    work.write("public/readme.txt", "public documentation\n")
    work.symlink("docs/link", "../../etc/passwd")  # relative, climbing out of the tree
    work.symlink("docs/passwd", "/etc/passwd")  # absolute
    work.symlink("docs/outside", str(outside))  # absolute, to a file we planted
    work.symlink("public/creds", "../secrets/prod.env")  # to a denied file inside the tree
    work.symlink("public/conf", "../secrets")  # a directory link into the denied directory
    sha["main"] = work.commit("Initial layout", when=_when(1))
    sha["main_tree"] = work.object_id("HEAD^{tree}")
    sha["secret_blob"] = work.object_id("HEAD:secrets/prod.env")
    work.branch("release/1.0")
    work.checkout("release/1.0")  # its own tip, so a search there runs git grep rather than ripgrep
    work.write("CHANGELOG.md", "1.0: first release\n")
    sha["release"] = work.commit("Release 1.0", when=_when(2))
    work.checkout("main")

    work.branch("wip")
    work.checkout("wip")
    work.write("wip/plan.txt", WIP_LINE + "\n")
    sha["wip"] = work.commit("Unannounced plan", when=_when(2))
    work.tag("wip-tag", message="tag on the closed branch", when=_when(3).isoformat())
    sha["wip_tag_object"] = work.object_id("refs/tags/wip-tag")

    work.checkout("main")
    work.write("pr.txt", PR_LINE + "\n")
    sha["pull"] = work.commit("A pull request's head", when=_when(4))
    git(work.path, "reset", "--quiet", "--hard", "HEAD~1")  # the PR commit stays only under refs/pull/


def _publish(base: Path, served: Path, outside: Path) -> tuple[dict[str, Path], dict[str, str]]:
    remotes: dict[str, Path] = {}
    sha: dict[str, str] = {}

    app_remote = make_bare_remote(served, "acme/app")
    app = WorkRepo(base / "work-app", app_remote)
    _build_app(app, outside, sha)
    app.push("main", "release/1.0", "wip")
    git(app.path, "push", "--quiet", "origin", "--tags")
    # What GitHub serves for every pull request; a mirror must never fetch it.
    app.push(f"{sha['pull']}:refs/pull/1/head", f"{sha['pull']}:refs/pull/1/merge")
    remotes["acme/app"] = app_remote

    for name, files in (
        ("acme/vault", {"README.md": VAULT_LINE + "\n"}),
        ("tools/my", {"README.md": "my tool\n"}),
        ("tools/my.secret-repo", {"README.md": MY_SECRET_LINE + "\n"}),
    ):
        remote = make_bare_remote(served, name)
        work = WorkRepo(base / f"work-{name.replace('/', '-')}", remote)
        for path, content in files.items():
            work.write(path, content)
        sha[f"{name}:main"] = work.commit(f"Start {name}", when=_when(5))
        work.push("main")
        remotes[name] = remote
    return remotes, sha


@contextlib.contextmanager
def deploy_target(base: Path) -> Generator[Target]:
    """Build, serve over smart HTTP, mirror and run everything; yields the running Target."""
    served = base / "served"
    outside = base / "outside" / "planted.txt"
    outside.parent.mkdir(parents=True)
    outside.write_text(OUTSIDE_LINE + "\n")
    remotes, sha = _publish(base, served, outside)
    generous = "100000/minute"
    settings = Settings.model_validate(
        {
            "data_dir": base / "data",
            "rate_limit": {"default": generous, "protocol": generous, "tools": {"search_code": generous}},
        }
    )
    settings.data_dir.mkdir(parents=True)
    with serve_git_http(served) as git_url:

        async def mirror_all() -> None:
            for name in remotes:
                await add_repository(settings, f"{git_url}/{name}.git", name=name)

        asyncio.run(mirror_all())
        settings.policy_file.write_text(POLICY)
        key = issue_key(settings, SUBJECT, groups=("eng",), description="red team")
        canaries = [
            line.encode()
            for line in (
                SECRET_LINE,
                ENV_LINE,
                CONFIG_ENV_LINE,
                WIP_LINE,
                PR_LINE,
                VAULT_LINE,
                MY_SECRET_LINE,
                OUTSIDE_LINE,
                PASSWD_LINE,
            )
        ]
        canaries.extend(sha[label].encode() for label in ("acme/vault:main", "tools/my.secret-repo:main"))
        app = create_app(settings)
        with serve_app(app) as url:
            yield Target(settings, app, url, remotes, key, outside, sha, canaries)


async def resync(target: Target, name: str) -> None:
    """Fetch `name` again with the real sync code (as `bastion repo sync` does)."""
    await sync_repository(target.settings, name)


# -- the client ----------------------------------------------------------------------------------------------------


class _Tee(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, sink: bytearray) -> None:
        self.inner = inner
        self.sink = sink

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.sink += chunk
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class TeeTransport(httpx2.AsyncBaseTransport):
    """The ordinary HTTP transport, keeping a copy of every response body byte the client reads."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.received = bytearray()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        stream = response.stream
        assert isinstance(stream, httpx2.AsyncByteStream)
        response.stream = _Tee(stream, self.received)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Probe:
    """One call and everything that came back for it."""

    tool: str
    arguments: dict[str, Any]
    request_id: str
    result: CallToolResult
    raw: bytes

    @property
    def text(self) -> str:
        return "\n".join(str(getattr(block, "text", "")) for block in self.result.content)


@dataclass(frozen=True)
class _Expected:
    request_id: str
    tool: str
    outcome: str
    decision: str
    reason: str
    rule: str | None
    audited: dict[str, str]


_TITLES = {"denied": "access denied", "invalid_input": "invalid input", "not_found": "not found"}


class Prober:
    """Calls tools through the SDK client, one request id per call; checks every answer's raw bytes for the
    target's canaries, each refusal's exact text, and (in `verify_audit`) each call's audit record."""

    def __init__(self, target: Target, client: Client, http: httpx2.AsyncClient, tee: TeeTransport, label: str):
        self.target = target
        self.client = client
        self.http = http
        self.tee = tee
        self.label = label
        self.count = 0
        self.expected: list[_Expected] = []

    async def call(self, tool: str, **arguments: Any) -> Probe:
        self.count += 1
        request_id = f"{self.label}-{self.count}"[-64:]
        self.http.headers["X-Request-Id"] = request_id
        start = len(self.tee.received)
        result = await self.client.call_tool(tool, arguments)
        raw = bytes(self.tee.received[start:])
        assert raw, "no response bytes were captured"
        leaked = [canary.decode() for canary in self.target.canaries if canary in raw]
        assert not leaked, f"{tool}({arguments!r}) leaked {leaked}: {raw[:600]!r}"
        return Probe(tool, arguments, request_id, result, raw)

    async def refused(
        self,
        tool: str,
        outcome: str,
        reason: str,
        *,
        decision: str | None = None,
        rule: str | None = None,
        **arguments: Any,
    ) -> Probe:
        """A call that must fail with exactly `<title>: <reason>`; its audit record is checked later.
        `decision` defaults to "deny" for denials and "none" otherwise; pass "allow" (with the rule) when policy
        had allowed the repository before the input was refused."""
        probe = await self.call(tool, **arguments)
        assert probe.result.is_error, f"{tool}({arguments!r}) was not refused: {probe.text[:400]}"
        assert probe.text == f"{_TITLES[outcome]}: {reason}", f"{tool}({arguments!r})"
        if decision is None:
            decision = "deny" if outcome == "denied" else "none"
        self.expected.append(_Expected(probe.request_id, tool, outcome, decision, reason, rule, {}))
        return probe

    def audited(self, metadata: dict[str, str]) -> None:
        """The last refusal's audit record must also carry `metadata`: facts only the audit record has."""
        self.expected[-1] = replace(self.expected[-1], audited=metadata)

    async def allowed(self, tool: str, **arguments: Any) -> dict[str, Any]:
        probe = await self.call(tool, **arguments)
        assert not probe.result.is_error, f"{tool}({arguments!r}) failed: {probe.text[:400]}"
        assert probe.result.structured_content is not None
        return probe.result.structured_content

    async def verify_audit(self) -> None:
        """Each refusal left exactly one audit record, with its outcome, decision, reason and rule."""
        by_request: dict[str, list[AuditEvent]] = {}
        for event in await self.target.audit():
            if event.request_id is not None:
                by_request.setdefault(event.request_id, []).append(event)
        for want in self.expected:
            events = by_request.get(want.request_id, [])
            assert len(events) == 1, f"{want.tool} ({want.request_id}): {len(events)} audit records"
            event = events[0]
            got = (event.tool, event.outcome, event.decision, event.reason, event.rule)
            assert got == (want.tool, want.outcome, want.decision, want.reason, want.rule), want.request_id
            assert {k: event.metadata.get(k) for k in want.audited} == want.audited, want.request_id
            assert (event.subject, event.bytes_returned) == (SUBJECT, 0)
            raw_event = event.model_dump_json().encode()
            assert not [c for c in self.target.canaries if c in raw_event], f"audit record leaks: {raw_event!r}"


@contextlib.asynccontextmanager
async def prober(target: Target, mode: str, label: str) -> AsyncGenerator[Prober]:
    """An SDK client in `mode` (a protocol version or "legacy") over real HTTP with the target's key."""
    tee = TeeTransport()
    http = httpx2.AsyncClient(transport=tee, headers={"Authorization": f"Bearer {target.key}"}, timeout=30)
    async with (
        http,
        Client(streamable_http_client(target.mcp_url, http_client=http), mode=mode, client_info=CLIENT_INFO) as client,
    ):
        yield Prober(target, client, http, tee, label)
