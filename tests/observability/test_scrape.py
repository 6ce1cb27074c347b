"""/metrics over real HTTP: after a known set of calls the counters say exactly what happened; the endpoint's
protection (token, loopback only, separate port)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx2
from tests.observability.helpers import OWNER, REPO, call_tool, deployment, samples, scrape, value
from tests.support.server import free_port

READ = {"owner": OWNER, "repo": REPO, "path": "README.md"}


def delta(before: dict, after: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return value(after, name, **labels) - value(before, name, **labels)


def test_counters_match_the_calls_made(tmp_path: Path) -> None:
    limits = {"default": "100000/minute", "protocol": "100000/minute", "tools": {"search_code": "2/minute"}}
    with deployment(tmp_path, rate_limit=limits) as target:
        metrics_url = f"{target.url}/metrics"
        before = samples(scrape(metrics_url))
        alice = target.keys["alice"]
        statuses: list[int] = []
        for _ in range(3):  # allowed
            statuses.append(call_tool(target, alice, "get_file_contents", READ).status_code)
        for _ in range(2):  # denied by policy: .env is on the default deny list
            statuses.append(call_tool(target, alice, "get_file_contents", {**READ, "path": ".env"}).status_code)
        # invalid: a path escaping the repository (the repository itself was allowed first)
        statuses.append(call_tool(target, alice, "get_file_contents", {**READ, "path": "../etc/passwd"}).status_code)
        # invalid before any tool body runs: the SDK's schema check, and a tool that does not exist
        statuses.append(
            call_tool(target, alice, "list_commits", {"owner": OWNER, "repo": REPO, "per_page": 1000}).status_code
        )
        unknown = call_tool(target, alice, "no_such_tool", {})
        unauthenticated = call_tool(target, None, "list_repositories", {})
        revoked = call_tool(target, target.keys["mallory"], "list_repositories", {})
        searches = [call_tool(target, alice, "search_code", {"query": "observability"}) for _ in range(3)]
        after = samples(scrape(metrics_url))

    assert statuses == [200] * 7, statuses  # tool errors are results, not HTTP errors
    assert unknown.status_code == 400  # an unknown tool is a protocol error (-32602)
    assert "Unknown tool" in unknown.text
    assert (unauthenticated.status_code, revoked.status_code) == (401, 401)
    assert [response.status_code for response in searches] == [200, 200, 429]

    calls = "mcp_bastion_tool_calls_total"
    assert delta(before, after, calls, tool="get_file_contents", outcome="ok", decision="allow") == 3
    assert delta(before, after, calls, tool="get_file_contents", outcome="denied", decision="deny") == 2
    assert delta(before, after, calls, tool="get_file_contents", outcome="invalid_input", decision="allow") == 1
    assert delta(before, after, calls, tool="list_commits", outcome="invalid_input", decision="none") == 1
    assert delta(before, after, calls, tool="unknown", outcome="invalid_input", decision="none") == 1
    assert delta(before, after, calls, tool="search_code", outcome="ok", decision="none") == 2
    total_calls = sum(after[key] - before.get(key, 0.0) for key in after if key[0] == calls)
    assert total_calls == 10, "a call was counted that was not made, or twice"
    assert delta(before, after, "mcp_bastion_latency_seconds_count", tool="get_file_contents") == 6
    assert delta(before, after, "mcp_bastion_denials_total", reason="policy") == 2
    assert delta(before, after, "mcp_bastion_denials_total", reason="auth") == 1  # the revoked key, not the missing one
    assert delta(before, after, "mcp_bastion_denials_total", reason="rate_limit") == 1
    assert delta(before, after, "mcp_bastion_auth_failures_total", kind="missing") == 1
    assert delta(before, after, "mcp_bastion_auth_failures_total", kind="invalid_token") == 1
    assert delta(before, after, "mcp_bastion_rate_limit_rejections_total", scope="tool:search_code") == 1
    # 3 reads + 1 invalid path: the calls policy allowed on the repository
    assert delta(before, after, "mcp_bastion_repository_access_total", repository=f"{OWNER}/{REPO}") == 4
    assert delta(before, after, "mcp_bastion_errors_total", tool="get_file_contents") == 0
    # scrape-time figures of this server
    assert ("mcp_bastion_audit_sink_lag_seconds", frozenset({("sink", "sqlite")})) in after
    assert ("mcp_bastion_audit_spool_events", frozenset()) in after
    assert 0 <= value(after, "mcp_bastion_mirror_seconds_since_sync", repository=f"{OWNER}/{REPO}") < 600
    assert value(after, "mcp_bastion_mirror_sync_failing", repository=f"{OWNER}/{REPO}") == 0


def test_the_main_port_answers_loopback_only_without_a_token(tmp_path: Path) -> None:
    # One trusted proxy: the edge takes the caller's address from X-Forwarded-For, as behind a load balancer.
    with deployment(tmp_path, server={"trusted_proxies": 1}) as target:
        local = httpx2.get(f"{target.url}/metrics", headers={"X-Forwarded-For": "127.0.0.1"}, timeout=10)
        remote = httpx2.get(f"{target.url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10)
    assert local.status_code == 200, local.text[:200]
    assert "mcp_bastion_tool_calls_total" in local.text or "# HELP mcp_bastion_tool_calls" in local.text
    assert remote.status_code == 403
    assert "BASTION_METRICS__TOKEN" in remote.json()["error_description"]
    assert "mcp_bastion" not in remote.text


def test_a_token_protects_metrics_on_the_main_port(tmp_path: Path) -> None:
    token = "metrics-token-0123456789abcdef"
    with deployment(tmp_path, metrics={"token": token}) as target:
        url = f"{target.url}/metrics"
        missing = httpx2.get(url, timeout=10)
        wrong = httpx2.get(url, headers={"Authorization": "Bearer not-the-token"}, timeout=10)
        api_key = httpx2.get(url, headers={"Authorization": f"Bearer {target.keys['alice']}"}, timeout=10)
        right = httpx2.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    for refused in (missing, wrong, api_key):
        assert refused.status_code == 401, refused.text[:200]
        assert refused.headers["www-authenticate"] == 'Bearer realm="metrics"'
        assert "metrics.token" in refused.json()["error_description"]
    assert right.status_code == 200
    assert "# TYPE mcp_bastion_tool_calls_total counter" in right.text


def test_metrics_on_a_port_of_their_own(tmp_path: Path) -> None:
    port = free_port()
    token = "separate-port-token-abcdef012345"
    with deployment(tmp_path, metrics={"port": port, "token": token}) as target:
        main_port = httpx2.get(f"{target.url}/metrics", timeout=10)
        call_tool(target, target.keys["alice"], "get_file_contents", READ)
        separate = f"http://127.0.0.1:{port}/metrics"
        refused = httpx2.get(separate, timeout=10)
        other_path = httpx2.get(f"http://127.0.0.1:{port}/mcp", timeout=10)
        text = scrape(separate, token)
    # Not served on the main port: the request falls through to /mcp's authentication, never to the figures.
    assert main_port.status_code == 401
    assert "mcp_bastion" not in main_port.text
    assert refused.status_code == 401
    assert other_path.status_code == 404
    found = samples(text)
    assert value(found, "mcp_bastion_tool_calls_total", tool="get_file_contents", outcome="ok", decision="allow") >= 1
    # the port is released when the server stops (SO_REUSEADDR: closed connections may linger in TIME_WAIT)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()
