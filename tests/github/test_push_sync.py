"""PushSync: a burst of pushes costs one sync, a push during a sync costs exactly one more, failures are logged."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bastion.errors import Unavailable
from bastion.github.push_sync import PushSync

pytestmark = pytest.mark.anyio


class Recorder:
    """A sync that records its calls and, when asked, waits at a gate until the test opens it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.started = asyncio.Event()
        self.gate: asyncio.Event | None = None
        self.fail_with: Exception | None = None

    async def __call__(self, name: str) -> None:
        self.calls.append(name)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with


async def test_pushes_within_the_delay_share_one_sync() -> None:
    recorder = Recorder()
    pushes = PushSync(recorder, delay=0.05)
    for _ in range(5):
        pushes.request("acme/api")
    pushes.request("ACME/API")  # the same repository
    pushes.request("acme/web")
    await pushes.wait_idle()
    assert sorted(recorder.calls) == ["acme/api", "acme/web"]


async def test_a_push_during_a_sync_queues_exactly_one_more_round() -> None:
    recorder = Recorder()
    recorder.gate = asyncio.Event()
    pushes = PushSync(recorder, delay=0)
    pushes.request("acme/api")
    await recorder.started.wait()  # the first sync is running now
    for _ in range(3):
        pushes.request("acme/api")
    recorder.gate.set()
    await pushes.wait_idle()
    assert recorder.calls == ["acme/api", "acme/api"]
    assert pushes.completed == 2


async def test_failures_are_logged_and_the_next_push_syncs_again(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    recorder.fail_with = Unavailable("git fetch failed: fatal: unable to access")
    pushes = PushSync(recorder, delay=0)
    pushes.request("acme/api")
    await pushes.wait_idle()
    assert "sync of acme/api after a push failed: git fetch failed: fatal: unable to access" in caplog.text
    recorder.fail_with = None
    pushes.request("acme/api")
    await pushes.wait_idle()
    assert recorder.calls == ["acme/api", "acme/api"]


async def test_aclose_cancels_waiting_syncs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = Recorder()
    pushes = PushSync(recorder, delay=3600)
    pushes.request("acme/api")
    await pushes.aclose()
    assert recorder.calls == []
    await pushes.wait_idle()
