"""The Lambda handler in-process, the whole serverless path: API Gateway REST (v1), HTTP API (v2) and Function URL
events -> Mangum -> the app (authentication, policy, guard, audit) -> the GitHub REST backend -> the local GitHub
stand-in over 127.0.0.1. Two warm invocations and a cold start, both protocol eras, 401/403 answers, and gateway
authorizer claims honoured only when trusted."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.aws.events import (
    HOST,
    KINDS,
    event,
    initialize,
    legacy_headers,
    modern_headers,
    response_json,
    tool_call,
)
from tests.support.github_api import GitHubApi, github_api
from tests.support.gitrepo import SampleRepository, build_sample_repository
from tests.support.oidc import IdentityProvider, TestKey, identity_provider, rsa_key, sign

from bastion.audit.event import AuditEvent
from bastion.audit.sink import AuditQuery
from bastion.audit.sqlite import SqliteAuditSink
from bastion.aws.lambda_handler import LambdaHandler
from bastion.config import Settings

REPO = "acme/widgets"
PUBLIC_URL = f"https://{HOST}/mcp"
SCOPE = "mcp-bastion/read"
README = {"owner": "acme", "repo": "widgets", "path": "README.md"}
POLICY = """\
version: 1
rules:
  - name: engineers-read
    description: Engineers read the widgets
    repositories: ["acme/widgets"]
    subjects: {groups: [engineers]}
    operations: ["*"]
"""


@dataclass
class World:
    sample: SampleRepository
    github: GitHubApi
    idp: IdentityProvider
    key: TestKey
    policy: Path

    def token(self, **overrides: Any) -> str:
        fields: dict[str, Any] = {"sub": "alice", "scope": SCOPE, "cognito:groups": ["engineers"], **overrides}
        claims = self.idp.claims(PUBLIC_URL, **fields)
        return sign(self.key, claims)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """What a gateway authorizer would put in the event for a verified Cognito access token."""
        base: dict[str, Any] = {
            "sub": "carol",
            "iss": self.idp.issuer,
            "token_use": "access",
            "scope": SCOPE,
            "client_id": "app-client-1",
            "cognito:groups": ["engineers", "on-call"],
            "jti": "jti-123",
            "exp": int(time.time()) + 600,
        }
        base.update(overrides)
        return {name: value for name, value in base.items() if value is not None}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("lambda")
    sample = build_sample_repository(base / "sample", remote_root=base / "remotes", name=REPO)
    policy = base / "policy.yaml"
    policy.write_text(POLICY)
    key = rsa_key("k1")
    with github_api(base / "remotes") as github, identity_provider(key) as idp:
        yield World(sample, github, idp, key, policy)


def _settings(world: World, data_dir: Path, **changes: Any) -> Settings:
    oidc = {"issuer": world.idp.issuer, "required_scopes": [SCOPE], "groups_claim": "cognito:groups"}
    auth = {"oidc": oidc, **changes.pop("auth", {})}
    server = {"json_response": True, "allowed_hosts": [HOST], "trusted_proxies": 0, **changes.pop("server", {})}
    return Settings(
        data_dir=data_dir,
        public_url=PUBLIC_URL,
        server=server,  # type: ignore[arg-type]
        auth=auth,  # type: ignore[arg-type]
        policy={"file": world.policy},  # type: ignore[arg-type]
        repos={"backend": "github", "bootstrap": [{"url": f"https://github.com/{REPO}.git", "name": REPO}]},  # type: ignore[arg-type]
        github={"api_url": world.github.url, "token": "test-token"},  # type: ignore[arg-type]
        **changes,
    )


@pytest.fixture
def environment(world: World, tmp_path: Path) -> Iterator[LambdaHandler]:
    handler = LambdaHandler(_settings(world, tmp_path / "tmp-bastion"))
    try:
        yield handler
    finally:
        handler.close()


def _result(response: dict[str, Any]) -> dict[str, Any]:
    assert response["statusCode"] == 200, response
    message = response_json(response)
    assert "result" in message, message
    return message["result"]


def _read_readme(handler: LambdaHandler, kind: str, era: str, token: str) -> dict[str, Any]:
    """One invocation (modern) or two (legacy: initialize, then the call); the call's result."""
    if era == "legacy":
        hello = _result(handler(event(kind, initialize(), legacy_headers(token, handshake=True)), None))
        assert hello["protocolVersion"] == "2025-06-18"
        return _result(
            handler(
                event(kind, tool_call("get_file_contents", README, modern=False, id=2), legacy_headers(token)), None
            )
        )
    return _result(
        handler(event(kind, tool_call("get_file_contents", README, modern=True), modern_headers(token)), None)
    )


def _audit(handler: LambdaHandler) -> list[AuditEvent]:
    sink = SqliteAuditSink(handler.settings.audit_db)
    try:
        return [found for _, found in sink.query(AuditQuery(limit=1000))]
    finally:
        sink.close()


# -- warm, warm, cold -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ["modern", "legacy"])
@pytest.mark.parametrize("kind", KINDS)
def test_two_warm_invocations_and_a_cold_one(world: World, tmp_path: Path, kind: str, era: str) -> None:
    token = world.token()
    expected = world.sample.commits["c5"]
    warm = LambdaHandler(_settings(world, tmp_path / "first"))
    try:
        first = _read_readme(warm, kind, era, token)
        blob_requests = len(world.github.paths("/git/blobs/"))
        second = _read_readme(warm, kind, era, token)
        assert len(world.github.paths("/git/blobs/")) == blob_requests  # warm: the file came from the SHA cache
        assert warm.adapter.lifespans_started == 1  # one real lifespan for every invocation of the environment
        audited = _audit(warm)
    finally:
        warm.close()
    for result in (first, second):
        assert result["isError"] is False, result
        assert result["structuredContent"]["resolved_sha"] == expected
        assert result["structuredContent"]["content"].startswith("# Widgets\n")
    calls = [e for e in audited if e.tool == "get_file_contents"]
    assert len(calls) == 2  # flushed to the sink at the end of each invocation
    assert {(e.subject, e.source_ip, e.auth_method, e.outcome) for e in calls} == {
        ("alice", "198.51.100.7", "oidc", "ok")
    }
    cold = LambdaHandler(_settings(world, tmp_path / "second"))  # a new environment: nothing carried over
    try:
        third = _read_readme(cold, kind, era, token)
    finally:
        cold.close()
    assert third["structuredContent"]["resolved_sha"] == expected
    assert third["structuredContent"]["content"] == first["structuredContent"]["content"]


def test_emf_figures_leave_with_each_invocation(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lambda may freeze or recycle the environment once an invocation is answered; the publisher's periodic tick
    only runs during invocations, so each invocation's end prints what it counted."""
    handler = LambdaHandler(_settings(world, tmp_path / "d", metrics={"emf": True, "emf_interval_seconds": 3600}))
    try:
        capsys.readouterr()
        result = _read_readme(handler, "http", "modern", world.token())
        printed = capsys.readouterr().out.splitlines()
    finally:
        handler.close()
    assert result["isError"] is False
    documents = [json.loads(line) for line in printed if line.startswith('{"_aws"')]
    calls = [d for d in documents if d.get("Tool") == "get_file_contents" and "ToolCalls" in d]
    assert calls, printed
    assert sum(d["ToolCalls"] for d in calls) == 1


def test_the_module_handler_builds_its_environment_from_the_environment_variables(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "BASTION_DATA_DIR": str(tmp_path / "tmp-bastion"),
        "BASTION_PUBLIC_URL": PUBLIC_URL,
        "BASTION_SERVER__JSON_RESPONSE": "true",
        "BASTION_SERVER__TRUSTED_PROXIES": "0",
        "BASTION_SERVER__ALLOWED_HOSTS": f'["{HOST}"]',
        "BASTION_POLICY__FILE": str(world.policy),
        "BASTION_REPOS__BACKEND": "github",
        "BASTION_REPOS__BOOTSTRAP": f'[{{"url": "https://github.com/{REPO}.git", "name": "{REPO}"}}]',
        "BASTION_GITHUB__API_URL": world.github.url,
        "BASTION_GITHUB__TOKEN": "test-token",
        "BASTION_AUTH__OIDC__ISSUER": world.idp.issuer,
        "BASTION_AUTH__OIDC__GROUPS_CLAIM": "cognito:groups",
        "BASTION_AUTH__TRUST_GATEWAY_AUTHORIZER": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    module = importlib.import_module("bastion.aws.lambda_handler")
    module = importlib.reload(module)  # a cold start: no environment yet
    call = event(
        "rest", tool_call("get_file_contents", README, modern=True), modern_headers(None), claims=world.claims()
    )
    first_environment = None
    try:
        for _ in range(2):
            answer = _result(module.handler(call, None))
            assert answer.get("structuredContent", {}).get("path") == "README.md", answer
        first_environment = module._environment
        module = importlib.reload(module)
        assert module._environment is None
        assert _result(module.handler(call, None))["isError"] is False
        assert module._environment is not first_environment
    finally:
        for environment in (first_environment, module._environment):
            if environment is not None:
                environment.close()


def test_health_needs_no_credential(environment: LambdaHandler) -> None:
    response = environment(event("rest", b"", {"Host": HOST}, path="/health", method="GET"), None)
    assert response["statusCode"] == 200
    assert response_json(response)["status"] == "ok"


def test_an_event_api_gateway_would_not_send_is_a_400_with_a_reason(environment: LambdaHandler) -> None:
    """A null header value, a body that is not base64, a missing requestContext, an unknown source: each raised
    out of the handler, which Lambda answers with a bare 502 (found by a probe)."""
    good = event("http", b"", {"Host": HOST}, path="/health", method="GET")
    broken = [
        {**good, "headers": {**good["headers"], "x-odd": None}},
        {**good, "body": "%%% not base64 %%%", "isBase64Encoded": True},
        {**good, "requestContext": None},
        {"unexpected": "shape"},
    ]
    for invocation in broken:
        response = environment(invocation, None)
        assert response["statusCode"] == 400, invocation
        assert response_json(response)["error"] == "invalid_event"
    assert environment(good, None)["statusCode"] == 200  # and the environment keeps serving


# -- 401 and 403 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_no_credential_is_401_with_a_challenge(environment: LambdaHandler, kind: str) -> None:
    response = environment(event(kind, tool_call("get_file_contents", README, modern=True), modern_headers(None)), None)
    assert response["statusCode"] == 401
    challenge = response["headers"]["www-authenticate"]
    assert challenge.startswith('Bearer realm="mcp-bastion"')
    assert f'resource_metadata="https://{HOST}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert f'scope="{SCOPE}"' in challenge
    assert response_json(response)["error_description"].startswith("missing Authorization header")


@pytest.mark.parametrize("kind", KINDS)
def test_a_forged_token_is_401_invalid_token(world: World, environment: LambdaHandler, kind: str) -> None:
    forged = sign(rsa_key("k1"), world.idp.claims(PUBLIC_URL, sub="mallory", scope=SCOPE))  # same kid, other key
    response = environment(
        event(kind, tool_call("get_file_contents", README, modern=True), modern_headers(forged)), None
    )
    assert response["statusCode"] == 401
    assert 'error="invalid_token"' in response["headers"]["www-authenticate"]
    assert "signature does not verify" in response_json(response)["error_description"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_token_without_the_scope_is_403_insufficient_scope(
    world: World, environment: LambdaHandler, kind: str
) -> None:
    token = world.token(scope="profile")
    response = environment(
        event(kind, tool_call("get_file_contents", README, modern=True), modern_headers(token)), None
    )
    assert response["statusCode"] == 403
    assert 'error="insufficient_scope"' in response["headers"]["www-authenticate"]
    assert response_json(response)["error_description"].startswith(
        f"the token lacks the scope(s) this server requires: {SCOPE}"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_the_ip_allowlist_uses_the_gateways_source_ip(world: World, tmp_path: Path, kind: str) -> None:
    handler = LambdaHandler(_settings(world, tmp_path / "d", server={"ip_allowlist": ["203.0.113.0/24"]}))
    body, token = tool_call("get_file_contents", README, modern=True), world.token()
    try:
        spoofed = modern_headers(token) | {"X-Forwarded-For": "203.0.113.5"}
        refused = handler(event(kind, body, spoofed, source_ip="198.51.100.7"), None)
        allowed = handler(event(kind, body, modern_headers(token), source_ip="203.0.113.9"), None)
        audited = _audit(handler)
    finally:
        handler.close()
    assert refused["statusCode"] == 403, refused
    assert "198.51.100.7" in response_json(refused)["error_description"]
    assert _result(allowed)["isError"] is False
    assert {e.source_ip for e in audited} == {"198.51.100.7", "203.0.113.9"}


# -- gateway authorizer claims ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rest", "http"])
def test_trusted_gateway_claims_name_the_caller(world: World, tmp_path: Path, kind: str) -> None:
    handler = LambdaHandler(_settings(world, tmp_path / "d", auth={"trust_gateway_authorizer": True}))
    body = tool_call("get_file_contents", README, modern=True)
    try:
        # No Authorization header reaches the function's own verifier: the gateway already checked the token.
        allowed = handler(event(kind, body, modern_headers(None), claims=world.claims(), scopes=[SCOPE]), None)
        outsider = world.claims(sub="dave", **{"cognito:groups": ["sales"]})
        denied = handler(event(kind, body, modern_headers(None), claims=outsider, scopes=[SCOPE]), None)
        audited = _audit(handler)
    finally:
        handler.close()
    assert _result(allowed)["structuredContent"]["resolved_sha"] == world.sample.commits["c5"]
    refusal = _result(denied)
    assert refusal["isError"] is True
    assert "no rule allows read on acme/widgets for dave (groups: sales)" in refusal["content"][0]["text"]
    calls = {e.subject: e for e in audited if e.tool == "get_file_contents"}
    assert calls["carol"].auth_method == f"gateway-{'cognito' if kind == 'rest' else 'jwt'}"
    assert (calls["carol"].outcome, calls["dave"].decision) == ("ok", "deny")


@pytest.mark.parametrize("kind", ["rest", "http"])
def test_trusted_gateway_claims_still_need_scope_and_issuer(world: World, tmp_path: Path, kind: str) -> None:
    handler = LambdaHandler(_settings(world, tmp_path / "d", auth={"trust_gateway_authorizer": True}))
    body = tool_call("get_file_contents", README, modern=True)
    try:
        unscoped = handler(
            event(kind, body, modern_headers(None), claims=world.claims(scope="profile"), scopes=["profile"]), None
        )
        foreign = handler(
            event(
                kind, body, modern_headers(None), claims=world.claims(iss="https://elsewhere.example"), scopes=[SCOPE]
            ),
            None,
        )
        id_token = handler(
            event(kind, body, modern_headers(None), claims=world.claims(token_use="id"), scopes=[SCOPE]), None
        )
    finally:
        handler.close()
    assert unscoped["statusCode"] == 403
    assert 'error="insufficient_scope"' in unscoped["headers"]["www-authenticate"]
    assert foreign["statusCode"] == 401
    assert "accepted a token from 'https://elsewhere.example'" in response_json(foreign)["error_description"]
    assert id_token["statusCode"] == 401
    assert "'id' token, not an access token" in response_json(id_token)["error_description"]


@pytest.mark.parametrize("kind", ["rest", "http"])
def test_untrusted_gateway_claims_are_ignored(world: World, environment: LambdaHandler, kind: str) -> None:
    body = tool_call("get_file_contents", README, modern=True)
    # Claims alone (an authorizer this server was not told to trust): the request has no credential.
    alone = environment(event(kind, body, modern_headers(None), claims=world.claims(), scopes=[SCOPE]), None)
    assert alone["statusCode"] == 401
    # An engineer's claims next to an outsider's own token: the token decides, the claims change nothing.
    outsider = world.token(sub="dave", **{"cognito:groups": ["sales"]})
    mixed = environment(event(kind, body, modern_headers(outsider), claims=world.claims(), scopes=[SCOPE]), None)
    assert _result(mixed)["isError"] is True
    assert "for dave (groups: sales)" in _result(mixed)["content"][0]["text"]


def test_a_claims_header_from_the_client_is_not_an_identity(world: World, tmp_path: Path) -> None:
    handler = LambdaHandler(_settings(world, tmp_path / "d", auth={"trust_gateway_authorizer": True}))
    headers = modern_headers(None) | {"X-Amzn-Oidc-Data": world.token(), "X-Authorizer-Claims": '{"sub": "root"}'}
    try:
        response = handler(event("url", tool_call("get_file_contents", README, modern=True), headers), None)
    finally:
        handler.close()
    assert response["statusCode"] == 401


def test_subscriptions_are_off_so_nothing_answers_with_sse(world: World, environment: LambdaHandler) -> None:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "subscriptions/listen",
            "params": {
                "_meta": json.loads(tool_call("x", {}, modern=True))["params"]["_meta"],
                "notifications": {"toolsListChanged": True},
            },
        }
    ).encode()
    headers = modern_headers(world.token(), method="subscriptions/listen")
    del headers["Mcp-Name"]  # only tools/call, resources/read and prompts/get name a target
    response = environment(event("http", body, headers), None)
    assert response["statusCode"] == 404, response
    assert response["headers"]["content-type"].startswith("application/json")
    assert response_json(response)["error"]["code"] == -32601


def test_a_function_url_host_must_be_allowed(world: World, tmp_path: Path) -> None:
    url_host = "abcdefghij.lambda-url.eu-west-1.on.aws"
    body, token = tool_call("get_file_contents", README, modern=True), world.token()
    headers = modern_headers(token) | {"Host": url_host}
    refusing = LambdaHandler(_settings(world, tmp_path / "a"))
    try:
        refused = refusing(event("url", body, headers), None)
    finally:
        refusing.close()
    allowing = LambdaHandler(_settings(world, tmp_path / "b", server={"allowed_hosts": [HOST, url_host]}))
    try:
        answered = allowing(event("url", body, headers), None)
    finally:
        allowing.close()
    assert (refused["statusCode"], refused["body"]) == (421, "Invalid Host header")
    assert _result(answered)["structuredContent"]["resolved_sha"] == world.sample.commits["c5"]
