"""Sealing events for sink tests: what the spool does, without a spool."""

from __future__ import annotations

from collections.abc import Sequence

from bastion.audit.chain import Chain
from bastion.audit.event import AuditEvent
from bastion.audit.sink import SealedEvent

__all__ = ["Sealer"]


class Sealer:
    """One instance's chain: `sealer(events)` seals them in order, continuing from the previous call."""

    def __init__(self, instance_id: str = "test0instance000", key: bytes | None = None) -> None:
        self.chain = Chain(instance_id, key=key)

    def __call__(self, events: Sequence[AuditEvent]) -> list[SealedEvent]:
        return [self.chain.seal(event) for event in events]
