"""Adversarial: credentials in repository content must never leave the server (issue 3, content guard).

Every credential kind is planted (generated at test time: tests/security/planted.py) in files, in a diff, in a
commit message, over many lines, next to byte budgets, line ranges and search clips (tests/security/
planted_repo.py). The real server is called over HTTP with the MCP SDK's own client in both protocol eras, and
every response's raw bytes (and the JSON strings in them) are searched for every 8-character fragment of every
planted secret. Answers are also checked for what they must still say (markers in place, line numbers true),
and the audit events for which rules fired where (and never a value).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, Implementation
from tests.e2e.helpers import ERAS
from tests.security.planted import Planted, make_credentials
from tests.security.planted_repo import APP, STRICT, Deployment, deploy_planted
from tests.security.policy_target import TeeTransport

from bastion.audit.event import AuditEvent

pytestmark = pytest.mark.anyio

CLIENT_INFO = Implementation(name="guard-suite", version="0.1")


@pytest.fixture(scope="module")
def planted() -> Planted:
    return make_credentials(many=260)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, planted: Planted) -> Generator[Deployment]:
    with deploy_planted(tmp_path_factory.mktemp("planted"), planted) as running:
        yield running


@pytest.fixture(params=ERAS)
def era(request: pytest.FixtureRequest) -> str:
    return request.param


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _decoded(raw: bytes) -> str:
    """The JSON strings in a response body (plain JSON or SSE events), unescaped."""
    text = raw.decode("utf-8", "replace")
    bodies = [line[len("data:") :] for line in text.splitlines() if line.startswith("data:")] or [text]
    found: list[str] = []
    for body in bodies:
        try:
            found.extend(_strings(json.loads(body)))
        except ValueError:
            continue
    return "\n".join(found)


@dataclass
class Answer:
    request_id: str
    result: CallToolResult
    raw: bytes

    @property
    def text(self) -> str:
        return "\n".join(str(getattr(block, "text", "")) for block in self.result.content)

    @property
    def data(self) -> dict[str, Any]:
        assert not self.result.is_error, self.text[:500]
        assert self.result.structured_content is not None
        return self.result.structured_content


class Caller:
    """The SDK client over real HTTP; every answer's raw bytes are checked for planted fragments."""

    def __init__(self, deployment: Deployment, client: Client, http: httpx2.AsyncClient, tee: TeeTransport, label: str):
        self.deployment = deployment
        self.client = client
        self.http = http
        self.tee = tee
        self.label = label
        self.count = 0

    async def call(self, tool: str, **arguments: Any) -> Answer:
        self.count += 1
        request_id = f"{self.label}-{self.count}"[-64:]
        self.http.headers["X-Request-Id"] = request_id
        start = len(self.tee.received)
        result = await self.client.call_tool(tool, arguments)
        raw = bytes(self.tee.received[start:])
        assert raw, "no response bytes were captured"
        planted = self.deployment.planted
        leaked = planted.leaks(raw.decode("utf-8", "replace") + "\n" + _decoded(raw))
        assert not leaked, f"{tool}({arguments!r}) leaked {leaked} (seed {planted.seed}): {raw[:800]!r}"
        return Answer(request_id, result, raw)

    async def event(self, answer: Answer) -> AuditEvent:
        [event] = [event for event in await self.deployment.audit() if event.request_id == answer.request_id]
        return event


@pytest.fixture
async def caller(deployment: Deployment, era: str, request: pytest.FixtureRequest) -> AsyncGenerator[Caller]:
    label = re.sub(r"[^A-Za-z0-9._:-]", "-", request.node.name)[-40:]
    tee = TeeTransport()
    http = httpx2.AsyncClient(transport=tee, headers={"Authorization": f"Bearer {deployment.key}"}, timeout=60)
    async with (
        http,
        Client(streamable_http_client(deployment.mcp_url, http_client=http), mode=era, client_info=CLIENT_INFO) as c,
    ):
        yield Caller(deployment, c, http, tee, label)


def _masked(text: str, planted: Planted, *names: str) -> str:
    for name in names or tuple(planted.by_name):
        credential = planted[name]
        marker = f"[REDACTED:{credential.kind}]"
        text = text.replace(credential.value, "\n".join(marker for _ in credential.value.splitlines()))
    return text


def _redactions(event: AuditEvent) -> list[dict[str, Any]]:
    return list(event.metadata.get("redactions", []))


# -- files -----------------------------------------------------------------------------------------------------------


async def test_a_file_with_every_kind_is_masked_in_place(caller: Caller) -> None:
    layout, planted = caller.deployment.layout, caller.deployment.planted
    answer = await caller.call("get_file_contents", **APP, path="config/settings.py")
    data = answer.data
    assert data["content"] == _masked(layout.settings_py, planted)
    assert data["total_lines"] == len(layout.settings_py.splitlines())
    assert data["resolved_sha"] == layout.sha["main"]
    event = await caller.event(answer)
    expected = [
        {"rule": planted[name].kind, "path": "config/settings.py", "line": line}
        for name, line in sorted(layout.settings_lines.items(), key=lambda item: item[1])
    ]
    assert _redactions(event) == expected
    assert event.metadata["redactions_total"] == len(expected)
    assert (event.outcome, event.decision, event.rule) == ("ok", "allow", "planted-read")
    clean = await caller.call("get_file_contents", **APP, path="README.md")
    assert clean.data["content"] == "# Billing service\n\nNothing secret here.\n"
    assert "redactions" not in (await caller.event(clean)).metadata


async def test_a_private_key_over_many_lines_keeps_the_line_numbers(caller: Caller) -> None:
    layout = caller.deployment.layout
    first, last = layout.key_first_line, layout.key_last_line
    whole = (await caller.call("get_file_contents", **APP, path="deploy/keys/signing.txt")).data
    lines = whole["content"].splitlines()
    assert len(lines) == whole["total_lines"] == len(layout.signing_txt.splitlines())
    assert lines[0] == "# release signing key"
    assert lines[-1] == "# rotate yearly"
    assert lines[first - 1 : last] == ["[REDACTED:private-key]"] * (last - first + 1)
    # Ranges that start inside the key, end inside it, or hold only its body: the key is masked in each.
    for start, end in ((1, first), (first + 3, first + 5), (last - 1, last + 1), (last, last)):
        answer = await caller.call(
            "get_file_contents", **APP, path="deploy/keys/signing.txt", start_line=start, end_line=end
        )
        piece = answer.data
        assert (piece["start_line"], piece["end_line"]) == (start, end)
        assert piece["content"].splitlines() == lines[start - 1 : end]
        event = await caller.event(answer)
        assert _redactions(event) == [{"rule": "private-key", "path": "deploy/keys/signing.txt", "line": first}]


async def test_byte_budgets_that_end_inside_a_credential(caller: Caller) -> None:
    """The budget cut falls into a token, a URL's password and every part of a key; the whole text is masked
    before it is cut, so no cut leaves a piece of one."""
    layout, planted = caller.deployment.layout, caller.deployment.planted
    text = layout.budget_txt
    budgets: set[int] = set()
    for needle in (planted["github_oauth"].value, planted["db_password"].value):
        at = text.index(needle)
        budgets.update(range(at - 2, at + len(needle) + 2))
    key_at = text.index("-----BEGIN")
    budgets.update(range(key_at - 3, key_at + len(planted["private_key"].value) + 3, 41))
    for budget in sorted(budgets):
        data = (await caller.call("get_file_contents", **APP, path="data/budget.txt", max_bytes=budget)).data
        assert len(data["content"].encode()) <= budget
        if not data["truncated"]:  # masking made the whole file fit the budget
            assert data["content"] == _masked(text, planted)


async def test_a_read_that_ends_inside_a_credential(caller: Caller) -> None:
    """Masking hundreds of tokens shrinks the text by more than the read's slack, so the answer runs up to where
    the read itself cut the file: inside the key, or inside the token after it. Neither may show a piece."""
    layout, planted = caller.deployment.layout, caller.deployment.planted
    text = layout.many_txt
    key_at = text.index("-----BEGIN")
    tail_end = text.index(planted["github_oauth"].value) + len(planted["github_oauth"].value)
    slack = 4096
    reached_the_cut = 0
    for read_end in range(key_at + 50, tail_end + 20, 53):
        data = (await caller.call("get_file_contents", **APP, path="data/many.txt", max_bytes=read_end - slack)).data
        assert data["truncated"] is True
        content = data["content"]
        assert "[REDACTED:github-pat]" in content
        if "-----BEGIN" in text[:read_end] and "[REDACTED:private-key]" in content:
            reached_the_cut += 1
    assert reached_the_cut > 10  # the premise: most answers ran into the key the read had cut
    whole = await caller.call("get_file_contents", **APP, path="data/many.txt")
    event = await caller.event(whole)
    assert len(_redactions(event)) == 50  # listed up to a cap, all counted
    assert event.metadata["redactions_total"] == len(planted.many) + 2


async def test_nul_past_the_binary_sniff_symlinks_and_binary_files(caller: Caller) -> None:
    planted = caller.deployment.planted
    late = (await caller.call("get_file_contents", **APP, path="data/late_nul.txt")).data
    assert late["content"].endswith("late_token = [REDACTED:gitlab-pat]\n")
    link = (await caller.call("get_file_contents", **APP, path="deploy/current-token")).data
    assert link["symlink_target"] == "../tokens/[REDACTED:github-oauth-token]"
    binary = await caller.call("get_file_contents", **APP, path="assets/tokens.bin")
    assert binary.data["binary"] is True
    assert binary.data["content"] is None
    size = len(b"\x00\x01BIN") + len(planted["slack"].value) + 64
    assert binary.text.endswith(f"is binary (binary data, {size} bytes); its content is not returned as text")
    assert planted["slack"].value.encode()[:8] not in binary.raw


# -- search ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", [None, "v1"], ids=["worktree-ripgrep", "tag-git-grep"])
async def test_search_finds_the_words_around_a_credential_never_the_credential(caller: Caller, ref: str | None) -> None:
    """A query that matches a credential's line outside the credential finds it, masked; one that matches only
    inside a credential (its prefix, a guess at it) finds nothing: the line with the credential masked does not
    match it."""
    layout = caller.deployment.layout
    where = {**APP, **({"ref": ref} if ref else {})}
    words = ["postgres://", "GITHUB_TOKEN", "SECRET_ACCESS", "SLACK_BOT", "STRIPE_KEY", "SERVICE_JWT", "DATABASE_URL"]
    for query in words:
        hits = (await caller.call("search_code", query=query, **where)).data["hits"]
        assert hits, f"no hits for {query!r}"
    for query in ["ghp_", "github_pat_", "gho_", "AKIA", "xoxb-", "sk_live_", "eyJ", "BEGIN RSA"]:
        hits = (await caller.call("search_code", query=query, **where)).data["hits"]
        assert hits == [], f"{query!r} found {hits[:2]}"
    hits = await caller.call("search_code", query="GITHUB_TOKEN", **where)
    settings_hit = [hit for hit in hits.data["hits"] if hit["path"] == "config/settings.py"]
    assert [hit["line"] for hit in settings_hit] == ['GITHUB_TOKEN = "[REDACTED:github-pat]"']
    assert settings_hit[0]["line_number"] == layout.settings_lines["github_pat"]
    event = await caller.event(hits)
    line = layout.settings_lines["github_pat"]
    assert {"rule": "github-pat", "repository": "planted/app", "path": "config/settings.py", "line": line} in (
        _redactions(event)
    )


@pytest.mark.parametrize("ref", [None, "v1"], ids=["worktree-ripgrep", "tag-git-grep"])
async def test_a_search_cannot_confirm_a_guess_at_a_masked_value(caller: Caller, ref: str | None) -> None:
    """The oracle of the 2026-11-21 review: with the first characters of a masked value known, the next one was
    confirmed by whether a search hit (about 1,300 calls for a 40-character key). A right and a wrong guess, alone
    or with the text before the value, now get the same answer; so do they under strict redaction (where the
    count of withheld hits told them apart)."""
    stripe = caller.deployment.planted["stripe"].value
    where = {**APP, **({"ref": ref} if ref else {})}
    wrong = "0" if stripe[12] != "0" else "1"
    for right_guess, wrong_guess, regex in [
        (stripe[:13], stripe[:12] + wrong, False),
        (f'"{stripe[:13]}', f'"{stripe[:12]}{wrong}', False),  # starting before the value
        (f"= .{stripe[:13]}", f"= .{stripe[:12]}{wrong}", True),
        # the guess, or what stands in for the value once it is masked (found by review)
        (f"{stripe[:13]}|REDACTED:stripe", f"{stripe[:12]}{wrong}|REDACTED:stripe", True),
        (f'= "\\B|{stripe[:13]}', f'= "\\B|{stripe[:12]}{wrong}', True),
    ]:
        right = (await caller.call("search_code", query=right_guess, regex=regex, **where)).data
        other = (await caller.call("search_code", query=wrong_guess, regex=regex, **where)).data
        assert (right["hits"], right["withheld_by_redaction"]) == (other["hits"], other["withheld_by_redaction"])
    # A hit found only in the value must not take the one place max_results leaves, before a known later line
    # (deploy/keys/signing.txt sorts after config/): which line comes back, and `truncated`, told them apart.
    answers = []
    for guess in (stripe[:13], stripe[:12] + wrong):
        answer = await caller.call("search_code", query=f"{guess}|rotate yearly", regex=True, max_results=1, **where)
        answers.append((answer.data["hits"], answer.data["truncated"], answer.data["searched"]))
    assert answers[0] == answers[1]
    assert [hit["path"] for hit in answers[0][0]] == ["deploy/keys/signing.txt"]
    # Where the engine and the guard could read a line differently, or two engines a pattern (found by review):
    gitlab = caller.deployment.planted["gitlab"].value
    other = "0" if gitlab[10] != "0" else "1"
    for probe in ('"$|{}', 'GL = "a--|{}', "\\x{{FFFD}}|{}", "\\<GL_TOKEN|{}", "GL_.?TOKEN|{}"):
        answers = []
        for guess in (gitlab[:11], gitlab[:10] + other):
            found = await caller.call("search_code", query=probe.format(guess), regex=True, path_glob="win/*", **where)
            answers.append(found.text if found.result.is_error else (found.data["hits"], found.data["truncated"]))
        assert answers[0] == answers[1], probe
    # Each repository's `truncated` must not tell whether the search ran again for more hits.
    answers = []
    for guess in (stripe[:13], stripe[:12] + wrong):
        found = await caller.call("search_code", query=f"{guess}|option_1[0-9]", regex=True, max_results=2, **where)
        answers.append({key: value for key, value in found.data.items() if key != "query"})
    assert answers[0] == answers[1]
    token = caller.deployment.planted["github_pat"].value
    wrong = "0" if token[10] != "0" else "1"
    for right_guess, wrong_guess, regex in [
        (token[:11], token[:10] + wrong, False),
        (f"{token[:11]}|REDACTED", f"{token[:10]}{wrong}|REDACTED", True),
    ]:
        right = (await caller.call("search_code", query=right_guess, regex=regex, **STRICT)).data
        other = (await caller.call("search_code", query=wrong_guess, regex=regex, **STRICT)).data
        assert (right["hits"], right["withheld_by_redaction"]) == (other["hits"], other["withheld_by_redaction"])
        assert right["withheld_by_redaction"] == 0


async def test_search_for_lines_of_a_key_and_long_runs(caller: Caller) -> None:
    """Regexes that match every line of a key's body (no BEGIN or END on those lines) and any long token: the key's
    lines match only inside the key, so none is found; long tokens that are not credentials are."""
    key_lines = (await caller.call("search_code", query="^[A-Za-z0-9+/]{64}$", regex=True, **APP)).data["hits"]
    assert key_lines == []
    runs = (await caller.call("search_code", query="[A-Za-z0-9_]{20,}", regex=True, max_results=200, **APP)).data
    assert runs["hits"]


async def test_search_hits_on_clipped_lines(caller: Caller) -> None:
    """A long line is clipped around the match: the key name that makes a value a credential is outside the
    window, and tokens are cut by both window edges. The guard reads the whole line, so all three are masked."""
    layout = caller.deployment.layout
    assert layout.clip_context is not None
    assert layout.clip_edges is not None
    [context] = (await caller.call("search_code", query=layout.clip_context.word, **APP)).data["hits"]
    assert context["line"].startswith("…")
    assert context["line"].endswith("…")
    assert "[REDACTED:aws-secret-key]" in context["line"]
    [edges] = (await caller.call("search_code", query=layout.clip_edges.word, **APP)).data["hits"]
    assert edges["line"].startswith("…[REDACTED:slack-token]")
    assert edges["line"].endswith('p="[REDACTED:github-pat]…')


# -- history ---------------------------------------------------------------------------------------------------------


def _patch(files: list[dict[str, Any]], path: str) -> str:
    [found] = [f for f in files if f["path"] == path]
    assert found["patch"] is not None, found
    return found["patch"]


async def test_commit_patches_and_message(caller: Caller) -> None:
    layout, planted = caller.deployment.layout, caller.deployment.planted
    answer = await caller.call("get_commit", **APP, sha=layout.sha["main"], detail="full_patch")
    files = answer.data["files"]
    settings = _patch(files, "config/settings.py")
    assert '-GITHUB_TOKEN = "[REDACTED:github-pat]"' in settings
    assert '+GITHUB_TOKEN = "[REDACTED:github-pat]"' in settings
    payments = _patch(files, "config/payments.py")
    assert payments.split("\n")[0].endswith('@@ PAYMENTS_SECRET = "[REDACTED:stripe-key]"')
    signing = _patch(files, "deploy/keys/signing.txt")
    assert {line[1:] for line in signing.split("\n") if line[:1] in "+- " and line} == {"[REDACTED:private-key]"}
    backup = _patch(files, "deploy/keys/backup.txt")
    assert backup.count("+[REDACTED:private-key]") == len(planted["private_key"].value.splitlines())
    message = answer.data["commit"]["message"]
    assert "The old token [REDACTED:github-pat] was revoked." in message
    assert "The deploy bot now posts with [REDACTED:slack-token]." in message
    event = await caller.event(answer)
    rules = {(r["rule"], r.get("path") or r.get("commit"), r.get("side")) for r in _redactions(event)}
    assert {
        ("github-pat", "config/settings.py", "old"),
        ("github-pat", "config/settings.py", "new"),
        ("stripe-key", "config/payments.py", "old"),
        ("private-key", "deploy/keys/backup.txt", "new"),
        ("github-pat", layout.sha["main"], None),
        ("slack-token", layout.sha["main"], None),
    } <= rules
    assert any(rule == "private-key" and path == "deploy/keys/signing.txt" for rule, path, _ in rules)


async def test_compare_and_commit_lists(caller: Caller) -> None:
    layout = caller.deployment.layout
    compared = (await caller.call("compare_refs", **APP, base="v1", head="main", detail="full_patch")).data
    assert '+GITHUB_TOKEN = "[REDACTED:github-pat]"' in _patch(compared["files"], "config/settings.py")
    assert "[REDACTED:github-pat]" in compared["commits"][0]["message"]
    listed = (await caller.call("list_commits", **APP)).data["commits"]
    assert [c["sha"] for c in listed] == [layout.sha["main"], layout.sha["v1"]]
    assert "[REDACTED:slack-token]" in listed[0]["message"]
    one = (await caller.call("get_commit", **APP, sha="main", detail="none")).data
    assert "[REDACTED:github-pat]" in one["commit"]["message"]


# -- strict ----------------------------------------------------------------------------------------------------------


async def test_strict_policy_refuses_withholds_and_drops(caller: Caller) -> None:
    layout = caller.deployment.layout
    lines = layout.strict_lines
    reason = (
        f"config/app.py contains credentials (github-pat at line {lines['github_pat']}, stripe-key at line "
        f"{lines['stripe']}); policy requires strict handling (rule 'strict-read')"
    )
    for arguments in ({}, {"start_line": 3, "end_line": 3}, {"max_bytes": 10}):
        refused = await caller.call("get_file_contents", **STRICT, path="config/app.py", **arguments)
        assert refused.result.is_error
        assert refused.text == f"access denied: {reason}"
        event = await caller.event(refused)
        assert (event.outcome, event.decision, event.reason, event.rule) == ("denied", "deny", reason, "strict-read")
        assert {(r["rule"], r["line"], r["withheld"]) for r in _redactions(event)} == {
            ("github-pat", lines["github_pat"], True),
            ("stripe-key", lines["stripe"], True),
        }
    assert (await caller.call("get_file_contents", **STRICT, path="docs/guide.md")).data["content"].startswith("The")
    searched = await caller.call("search_code", query="ledger", **STRICT)
    assert {hit["path"] for hit in searched.data["hits"]} == {"README.md", "docs/guide.md"}
    assert searched.data["withheld_by_redaction"] == 2
    assert searched.text.endswith(
        "(2 matches withheld: their files contain credentials and policy requires strict handling)"
    )
    commit = (await caller.call("get_commit", **STRICT, sha="main", detail="full_patch")).data
    [app] = [f for f in commit["files"] if f["path"] == "config/app.py"]
    assert app["patch"] is None
    assert app["patch_withheld"] == (
        f"patch withheld: it contains credentials (github-pat at line {lines['github_pat']}, stripe-key at line "
        f"{lines['stripe']}); policy requires strict handling (rule 'strict-read')"
    )
    assert _patch(commit["files"], "docs/guide.md").startswith("@@")
    assert commit["commit"]["message"] == "[message withheld: it contains credentials (stripe-key at line 1)]"


# -- the audit trail, and the control --------------------------------------------------------------------------------


async def _every_tool(caller: Caller) -> None:
    main = caller.deployment.layout.sha["main"]
    await caller.call("get_file_contents", **APP, path="config/settings.py")
    await caller.call("search_code", query="GITHUB_TOKEN", **APP)
    await caller.call("get_commit", **APP, sha=main, detail="full_patch")
    await caller.call("compare_refs", **APP, base="v1", head="main", detail="full_patch")
    await caller.call("list_commits", **APP)


async def test_the_audit_trail_holds_no_value(caller: Caller) -> None:
    await _every_tool(caller)
    deployment = caller.deployment
    events = await deployment.audit()
    assert sum(1 for event in events if event.metadata.get("redactions")) >= 5  # the premise: findings were audited
    for event in events:
        leaked = deployment.planted.leaks(event.model_dump_json())
        assert not leaked, f"audit event {event.request_id} holds {leaked}"


async def test_the_redactions_metric_counts_them(caller: Caller) -> None:
    """`mcp_bastion_redactions_total` (docs/observability.md) counts credentials found in what tools returned."""
    await _every_tool(caller)
    async with httpx2.AsyncClient(timeout=30) as http:
        text = (await http.get(f"{caller.deployment.url}/metrics")).text
    counted = {
        match.group(1): float(match.group(2))
        for match in re.finditer(r'^mcp_bastion_redactions_total\{tool="([a-z_]+)"\} ([0-9.e+]+)$', text, re.MULTILINE)
    }
    for tool in ("get_file_contents", "search_code", "get_commit", "compare_refs", "list_commits"):
        assert counted.get(tool, 0) > 0, f"{tool}: {counted}"


@pytest.fixture(scope="module")
def unguarded(tmp_path_factory: pytest.TempPathFactory) -> Generator[Deployment]:
    with deploy_planted(tmp_path_factory.mktemp("unguarded"), make_credentials(), redact_secrets=False) as running:
        yield running


async def test_with_the_guard_off_the_values_would_be_there(unguarded: Deployment) -> None:
    """The control: the same deployment with `guard.redact_secrets: false` returns the planted values (so the
    checks above can fail, and the setting does what it says)."""
    tee = TeeTransport()
    http = httpx2.AsyncClient(transport=tee, headers={"Authorization": f"Bearer {unguarded.key}"}, timeout=60)
    async with http, Client(streamable_http_client(unguarded.mcp_url, http_client=http), client_info=CLIENT_INFO) as c:
        await c.call_tool("get_file_contents", {**APP, "path": "config/settings.py"})
        await c.call_tool("search_code", {"query": "CLIPMARK_EDGES", **APP})
    leaked = unguarded.planted.leaks(bytes(tee.received).decode())
    assert {"github_pat", "aws_secret", "slack", "stripe", "jwt", "db_password"} <= set(leaked)
