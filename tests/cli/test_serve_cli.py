"""`bastion serve` refuses to start, with one clear message and a non-zero exit, when configuration is missing.

Run as a real subprocess: a server that wrongly starts would serve forever, so every run has a timeout (and port
0, so a wrong start cannot collide with anything)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.moto import moto_with_fake_credentials

BASTION = Path(sys.executable).parent / "bastion"


def _serve(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("BASTION_")}
    clean.update({"BASTION_DATA_DIR": str(data_dir), "BASTION_PORT": "0", **(env or {})})
    # Its own process group: if it wrongly starts (with --workers, uvicorn's worker processes too), the timeout
    # ends every process of this run and no other.
    process = subprocess.Popen(
        [str(BASTION), "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"bastion serve {' '.join(args)} did not exit; stderr:\n{stderr[-2000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_missing_policy_file_stops_the_server_with_one_message(tmp_path: Path, workers: str) -> None:
    done = _serve(tmp_path, "--workers", workers)
    assert done.returncode == 1
    assert done.stdout == ""
    policy = tmp_path / "policy.yaml"
    assert done.stderr.startswith(
        f"error: policy file {policy} does not exist: create it (start from examples/policy.yaml"
    )
    assert "Traceback" not in done.stderr
    assert done.stderr.count("does not exist") == 1  # with workers: said once, not by each worker in a loop


def test_the_policy_file_setting_is_the_one_named(tmp_path: Path) -> None:
    elsewhere = tmp_path / "conf" / "bastion-policy.yaml"
    done = _serve(tmp_path / "data", env={"BASTION_POLICY__FILE": str(elsewhere)})
    assert done.returncode == 1
    assert f"error: policy file {elsewhere} does not exist" in done.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_broken_policy_file_is_named_with_its_line(tmp_path: Path, workers: str) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nrules:\n  - name: r\n    repositories: [acme/*]\n    deny_path: [x]\n")
    done = _serve(tmp_path, "--workers", workers)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {policy} has 3 problems:\n")
    assert f"{policy}:5: rule 'r': unknown key 'deny_path' (did you mean 'deny_paths'?)" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_policy_url_that_cannot_be_read_stops_the_server_with_one_message(tmp_path: Path, workers: str) -> None:
    """With workers, the check before they start reads what they would read: the parameter, not a policy file."""
    with moto_with_fake_credentials(tmp_path / "moto") as moto:
        env = {"BASTION_POLICY__URL": "ssm:/mcp-bastion/serve/no-such-policy", "AWS_ENDPOINT_URL": moto.endpoint_url}
        done = _serve(tmp_path / "data", "--workers", workers, env=env)
    assert done.returncode == 1
    assert (
        "\nerror: cannot load the policy at start: cannot read the policy parameter "
        "ssm:/mcp-bastion/serve/no-such-policy: ParameterNotFound" in done.stderr
    ), done.stderr[-2000:]
    assert done.stderr.count("cannot load the policy") == 1
    assert "Traceback" not in done.stderr


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """It said "listening on ..." and started the app (claiming an audit spool slot) before uvicorn failed to bind
    (found by a probe)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(tmp_path, "--port", str(port))
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: Address already in use")
    assert "listening on" not in done.stderr
    assert not (tmp_path / "audit-spool").exists()
