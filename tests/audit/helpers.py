"""Sealing events for sink tests (what the spool does, without a spool), and reading a spool's log the way the
format is documented (bastion.audit.segments), independently of the code that writes it."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

from bastion.audit.chain import Chain
from bastion.audit.event import AuditEvent
from bastion.audit.sink import SealedEvent

__all__ = ["Sealer", "spooled"]


class Sealer:
    """One instance's chain: `sealer(events)` seals them in order, continuing from the previous call."""

    def __init__(self, instance_id: str = "test0instance000", key: bytes | None = None) -> None:
        self.chain = Chain(instance_id, key=key)

    def __call__(self, events: Sequence[AuditEvent]) -> list[SealedEvent]:
        return [self.chain.seal(event) for event in events]


def spooled(spool_dir: Path, slot: int = 0) -> list[tuple[int, str]]:
    """(seq, line) of every event record in the slot's segment files, in file order: `<seq> <crc32 hex> <line>`
    per line; seq 0 is a segment's header. Fails on a record whose CRC does not match."""
    found: list[tuple[int, str]] = []
    for path in sorted((spool_dir / f"slot-{slot}").glob("*.log")):
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # pruned between listing and reading
            continue
        for raw in data.splitlines():
            seq, crc, line = raw.split(b" ", 2)
            assert int(crc, 16) == zlib.crc32(line), f"{path.name}: CRC mismatch at seq {seq.decode()}"
            if int(seq) != 0:
                found.append((int(seq), line.decode()))
    return found
