"""The spool's first format, one SQLite file per slot (`slot-<n>.db`), read for upgrades: a server that finds one
moves its instance id, chain head, sink cursors and retained events into the segment log (bastion.audit.segments)
before it writes anything, so an upgrade neither restarts the chain nor loses a sink's backlog; and `verify` can
still read the head of a slot whose server has not been restarted since.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from pathlib import Path

from bastion.audit import segments

__all__ = ["legacy_heads", "migrate_legacy_slot"]

logger = logging.getLogger(__name__)

LegacyHead = tuple[Path, str, int, str | None, dict[str, int]]


def _read(connection: sqlite3.Connection) -> tuple[dict[str, str], dict[str, int]]:
    meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
    cursors = {sink: int(seq) for sink, seq in connection.execute("SELECT sink, seq FROM cursors")}
    return meta, cursors


def migrate_legacy_slot(db_path: Path, slot_dir: Path) -> None:
    """Move `slot-<n>.db` into `slot_dir` (which the caller holds the slot lock for), then rename it to
    `slot-<n>.db.migrated`. The instance file is written last: until it exists the migration starts over."""
    if not db_path.exists():
        return
    if (slot_dir / segments.INSTANCE).exists():  # migrated; only the rename was cut short
        _retire(db_path)
        return
    connection = sqlite3.connect(db_path, isolation_level=None)
    try:
        meta, cursors = _read(connection)
        rows = connection.execute("SELECT seq, line FROM events ORDER BY seq").fetchall()
        with contextlib.suppress(sqlite3.Error):
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    if "instance_id" not in meta:
        return  # never initialised: nothing to keep
    for stale in segments.list_segments(slot_dir):
        stale.path.unlink()
    head_seq, head_hash = int(meta.get("head_seq", 0)), meta.get("head_hash")
    if rows:
        first_seq, prev_hash = int(rows[0][0]), json.loads(rows[0][1]).get("prev_hash")
    else:
        first_seq, prev_hash = head_seq + 1, head_hash
    data = [segments.encode_header(meta["instance_id"], first_seq, prev_hash)]
    data += [segments.encode_record(int(seq), line.encode()) for seq, line in rows]
    segment = slot_dir / segments.segment_name(first_seq)
    segment.write_bytes(b"".join(data))
    os.chmod(segment, 0o600)
    segments.fsync_path(segment)
    segments.write_cursors(slot_dir, cursors)
    instance = slot_dir / segments.INSTANCE
    instance.write_text(meta["instance_id"] + "\n")
    segments.fsync_path(instance)
    segments.fsync_path(slot_dir, directory=True)
    logger.warning(
        "audit spool: moved %s (instance %s, %d events, head seq %d) into %s",
        db_path.name,
        meta["instance_id"],
        len(rows),
        head_seq,
        slot_dir,
    )
    _retire(db_path)


def _retire(db_path: Path) -> None:
    os.replace(db_path, db_path.with_name(db_path.name + ".migrated"))
    for suffix in ("-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)


def legacy_heads(directory: Path) -> list[LegacyHead]:
    """(path, instance id, head seq, head hash, cursors) of every `slot-*.db` in `directory`."""
    heads: list[LegacyHead] = []
    for path in sorted(directory.glob("slot-*.db")):
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            meta, cursors = _read(connection)
        except sqlite3.Error:
            continue
        finally:
            connection.close()
        if "instance_id" in meta:
            heads.append((path, meta["instance_id"], int(meta.get("head_seq", 0)), meta.get("head_hash"), cursors))
    return heads
