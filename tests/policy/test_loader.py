"""Loading policy files, and reloading them while serving: edits, atomic replaces, symlink swaps, broken edits."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.policy.loader import PolicyFile, load_policy
from bastion.policy.types import AccessRequest, Operation

REPO_ROOT = Path(__file__).resolve().parents[2]

ALICE_READS_API = AccessRequest("alice", frozenset({"eng"}), "acme/api", Operation.READ)


def policy_text(repository: str) -> str:
    return (
        "version: 1\n"
        "rules:\n"
        "  - name: eng-read\n"
        f"    repositories: [{repository}]\n"
        "    subjects: {groups: [eng]}\n"
        "    operations: [read]\n"
    )


_mtime_counter = [1_700_000_000_000_000_000]


def write(path: Path, text: str) -> None:
    """Write and give the file a new mtime, so the change is visible even on file systems with coarse clocks."""
    path.write_text(text, encoding="utf-8")
    _mtime_counter[0] += 1_000_000_000
    os.utime(path, ns=(_mtime_counter[0], _mtime_counter[0]))


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    write(path, policy_text("acme/api"))
    return path


def test_load_policy_from_file(policy_path: Path) -> None:
    policy = load_policy(policy_path)
    assert policy.decide(ALICE_READS_API).reason == "allowed by rule 'eng-read'"
    assert policy.source == str(policy_path)


def test_load_policy_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_policy(tmp_path / "nope.yaml")
    assert f"policy file {tmp_path / 'nope.yaml'} does not exist" in caught.value.message
    assert "examples/policy.yaml" in caught.value.message


def test_load_policy_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"version: 1\n# \xff\xfe\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_policy(path)


def test_load_policy_error_carries_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nrules: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    assert caught.value.message.startswith(f"{path}:2: rules must be a list")
    assert caught.value.details["line"] == 2


def test_the_example_policy_loads_and_decides() -> None:
    policy = load_policy(REPO_ROOT / "examples" / "policy.yaml")
    engineer = AccessRequest("alice", frozenset({"engineering"}), "acme/api", Operation.READ, "refs/heads/main")
    assert policy.decide(engineer).reason == "allowed by rule 'engineering-read'"
    contractor = AccessRequest(
        "carol@contractor.example", frozenset(), "acme/payments-api", Operation.READ, "refs/heads/main", "docs/x.md"
    )
    assert policy.decide(contractor).reason == (
        "path 'docs/x.md' is not allowed by rule 'contractor-payments' (allowed: /src/**, /README.md)"
    )
    notes = AccessRequest("bob", frozenset({"platform"}), "acme/security", Operation.READ, None, "incidents/2026.md")
    assert policy.decide(notes).reason == (
        "denied by rule 'no-incident-notes': Incident notes are shared only through the security team"
    )


# -- PolicyFile ---------------------------------------------------------------------------------------------------


def test_policy_file_missing_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        PolicyFile(tmp_path / "policy.yaml", 0)
    assert "does not exist" in caught.value.message
    assert "examples/policy.yaml" in caught.value.message


def test_policy_file_broken_at_start_refuses(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    write(path, "version: 1\nrulez: []\n")
    with pytest.raises(ConfigError, match="unknown key 'rulez'"):
        PolicyFile(path, 0)


def test_reload_on_change(policy_path: Path) -> None:
    policy_file = PolicyFile(policy_path, check_interval=0)
    first = policy_file.current()
    assert first.decide(ALICE_READS_API).allowed
    assert policy_file.current() is first  # unchanged file: same object, no reparse
    loaded_at = policy_file.loaded_at

    write(policy_path, policy_text("acme/web"))
    second = policy_file.current()
    assert second is not first
    assert second.decide(ALICE_READS_API).reason == "no rule allows read on acme/api for alice (groups: eng)"
    assert policy_file.last_error is None
    assert policy_file.loaded_at >= loaded_at


def test_check_interval_limits_how_often_the_file_is_looked_at(policy_path: Path) -> None:
    policy_file = PolicyFile(policy_path, check_interval=3600)
    first = policy_file.current()
    write(policy_path, policy_text("acme/web"))
    assert policy_file.current() is first  # not checked again within the hour


def test_broken_edit_keeps_the_last_good_policy_and_logs_once(
    policy_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policy_file = PolicyFile(policy_path, check_interval=0)
    good = policy_file.current()
    write(policy_path, policy_text("acme/api") + "    max_file_size: huge\n")
    with caplog.at_level(logging.ERROR, logger="bastion.policy.loader"):
        assert policy_file.current() is good
        assert policy_file.current() is good
    assert policy_file.last_error is not None
    assert "rule 'eng-read' max_file_size: 'huge' is not a size" in policy_file.last_error
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "'huge' is not a size" in errors[0].getMessage()
    assert "still serving the policy loaded at" in errors[0].getMessage()

    # another broken edit is a new change: logged again
    write(policy_path, "version: 1\nrules: [\n")
    with caplog.at_level(logging.ERROR, logger="bastion.policy.loader"):
        assert policy_file.current() is good
    assert "not valid YAML" in (policy_file.last_error or "")
    assert len([record for record in caplog.records if record.levelno == logging.ERROR]) == 2

    # fixing the file clears the error
    write(policy_path, policy_text("acme/web"))
    fixed = policy_file.current()
    assert fixed is not good
    assert policy_file.last_error is None
    assert not fixed.decide(ALICE_READS_API).allowed


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ("    max_file_size: .inf\n", "a size must be a finite number of bytes, got inf"),
        ("    max_file_size: .nan\n", "a size must be a finite number of bytes, got nan"),
        ("  - " + "[" * 3000 + "\n", "the YAML is nested deeper than Python can read"),
    ],
    ids=["infinity", "nan", "deep"],
)
def test_edits_that_broke_the_parser_keep_the_last_good_policy(policy_path: Path, edit: str, reason: str) -> None:
    """`.inf` raised OverflowError and 3,000 nested `[` RecursionError, neither of them a ConfigError: every tool
    call then failed with an internal error, re-reading the file each time (found by a probe)."""
    policy_file = PolicyFile(policy_path, check_interval=0)
    good = policy_file.current()
    write(policy_path, policy_text("acme/api") + edit)
    assert policy_file.current() is good
    assert reason in (policy_file.last_error or "")
    with pytest.raises(ConfigError) as refused:  # and what lint and `policy check --file` read: a problem, no crash
        load_policy(policy_path)
    assert reason in refused.value.message


def test_atomic_replace_by_rename_is_picked_up(policy_path: Path) -> None:
    policy_file = PolicyFile(policy_path, check_interval=0)
    assert policy_file.current().decide(ALICE_READS_API).allowed
    replacement = policy_path.with_name("policy.yaml.tmp")
    replacement.write_text(policy_text("acme/web"))  # same size, possibly the same mtime: the inode differs
    os.replace(replacement, policy_path)
    assert not policy_file.current().decide(ALICE_READS_API).allowed


def test_kubernetes_configmap_symlink_swap_is_picked_up(tmp_path: Path) -> None:
    # kubelet layout: policy.yaml -> ..data/policy.yaml, ..data -> ..<timestamp>/ ; an update swaps ..data
    first_dir, second_dir = tmp_path / "..2026_01", tmp_path / "..2026_02"
    first_dir.mkdir()
    second_dir.mkdir()
    (first_dir / "policy.yaml").write_text(policy_text("acme/api"))
    (second_dir / "policy.yaml").write_text(policy_text("acme/web"))
    (tmp_path / "..data").symlink_to(first_dir.name)
    (tmp_path / "policy.yaml").symlink_to("..data/policy.yaml")
    policy_file = PolicyFile(tmp_path / "policy.yaml", check_interval=0)
    assert policy_file.current().decide(ALICE_READS_API).allowed

    (tmp_path / "..data_tmp").symlink_to(second_dir.name)
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert not policy_file.current().decide(ALICE_READS_API).allowed


def test_deleted_file_keeps_serving(policy_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    policy_file = PolicyFile(policy_path, check_interval=0)
    good = policy_file.current()
    policy_path.unlink()
    with caplog.at_level(logging.ERROR, logger="bastion.policy.loader"):
        assert policy_file.current() is good
        assert policy_file.current() is good
    assert "cannot be read" in (policy_file.last_error or "")
    assert len([record for record in caplog.records if record.levelno == logging.ERROR]) == 1
    write(policy_path, policy_text("acme/web"))
    assert policy_file.current() is not good
    assert policy_file.last_error is None
