"""list_repositories through the tool layer, with a real policy file and a real mirror."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.tools.conftest import REPO, Widgets, write_policy

from bastion.policy.loader import PolicyFile
from bastion.principal import Principal
from bastion.repos.mirror import MirrorBackend
from bastion.services import Services
from bastion.tools.access import Access
from bastion.tools.call import ToolCall
from bastion.tools.listing import list_repositories

POLICY = """\
version: 1
rules:
  - name: alice-main
    repositories: ["acme/widgets"]
    subjects: {users: [alice]}
    operations: [read]
    refs: [main]
  - name: dave-releases
    repositories: ["acme/widgets"]
    subjects: {users: [dave]}
    operations: [read, search]
    refs: ["release/*"]
"""


async def _listed(widgets: Widgets, backend: MirrorBackend, tmp_path: Path, who: str) -> list[dict[str, Any]]:
    access = Access(PolicyFile(write_policy(tmp_path, POLICY), check_interval=0), backend)
    services = Services(settings=widgets.settings, backend=backend, access=access, record=lambda event: None)
    answer = await list_repositories(ToolCall(services, Principal(who), "list_repositories"))
    assert answer.structured_content is not None
    return answer.structured_content["repositories"]


@pytest.mark.anyio
async def test_the_head_commit_is_shown_to_callers_who_may_read_the_default_branch(
    widgets: Widgets, backend: MirrorBackend, tmp_path: Path
) -> None:
    [repo] = await _listed(widgets, backend, tmp_path, "alice")
    info = await backend.get_repository(REPO)
    assert (repo["name"], repo["default_branch"], repo["head_sha"]) == (REPO, "main", info.head_sha)
    assert repo["head_sha"]


@pytest.mark.anyio
async def test_the_head_commit_is_hidden_from_callers_who_may_not(
    widgets: Widgets, backend: MirrorBackend, tmp_path: Path
) -> None:
    """dave may read release branches only: the repository is listed, main's commit id is not his to know."""
    [repo] = await _listed(widgets, backend, tmp_path, "dave")
    assert (repo["name"], repo["operations"], repo["head_sha"]) == (REPO, ["read", "search"], None)
    assert repo["default_branch"] == "main"


@pytest.mark.anyio
async def test_a_caller_with_no_rule_sees_no_repository(
    widgets: Widgets, backend: MirrorBackend, tmp_path: Path
) -> None:
    assert await _listed(widgets, backend, tmp_path, "mallory") == []
