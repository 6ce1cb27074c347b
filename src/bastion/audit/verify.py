"""`bastion audit verify`: check a sink's stored lines against the hash chain (bastion.audit.chain).

Per instance, in seq order, every record must hash to its `hash`, point with `prev_hash` at the previous
record's hash, and follow it without a gap; in storage order, seqs must only grow. What is found:

- modified:   a record's content does not match its hash, or the chain breaks after a record that was re-hashed
- deleted:    seqs missing (a gap; before the first record; or after the last, when the local spool says the sink
              had stored more)
- inserted:   a record that is not part of the chain: no chain fields, a second record for a seq that does not
              link, or a seq beyond the instance's head
- reordered:  a record stored after one with a higher seq
- duplicate:  the same record stored twice (a delivery bug, not tampering)
- unreadable: not JSON
- unverifiable: HMAC-sealed records and no key; or, with a key, an instance none of whose records is sealed with
              it (anyone can compute SHA-256), unless named in `plain_instances`

With a key, a plain SHA-256 record after one sealed with the key is `modified`: a server that has the key never
goes back, so the record was re-sealed by someone without it (the downgrade that would otherwise let a sink
writer forge an HMAC chain's records). Plain records before an instance's first keyed one (the key was turned on
while it ran) are proven by that record's HMAC, which covers the link to them.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bastion.audit.chain import HMAC_SHA256, SHA256, document_hash
from bastion.audit.sink import StoredLine
from bastion.audit.spool import SpoolHead

__all__ = ["InstanceSummary", "Problem", "VerifyReport", "verify_lines"]

ProblemKind = Literal["modified", "deleted", "inserted", "reordered", "duplicate", "unreadable", "unverifiable"]


@dataclass(frozen=True, slots=True)
class Problem:
    kind: ProblemKind
    detail: str
    instance_id: str | None = None
    seq: int | None = None  # the first seq concerned
    position: int | None = None  # storage position, when one record is concerned

    def render(self) -> str:
        where: list[str] = []
        if self.instance_id:
            where.append(f"instance {self.instance_id}")
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        if self.position is not None:
            where.append(f"position {self.position}")
        return f"{self.kind:<10}  {', '.join(where)}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "instance_id": self.instance_id,
            "seq": self.seq,
            "position": self.position,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class InstanceSummary:
    instance_id: str
    records: int
    first_seq: int
    last_seq: int


@dataclass
class VerifyReport:
    sink: str
    records: int = 0
    instances: list[InstanceSummary] = field(default_factory=list[InstanceSummary])
    problems: list[Problem] = field(default_factory=list[Problem])

    @property
    def ok(self) -> bool:
        return not self.problems

    def kinds(self) -> set[str]:
        return {problem.kind for problem in self.problems}


@dataclass(slots=True)
class _Record:
    position: int
    line: str
    seq: int
    hash: str
    prev_hash: str | None
    hash_ok: bool | None  # None: cannot be checked (HMAC without the key)
    keyed: bool = False  # sealed with the HMAC key (as opposed to plain SHA-256)
    column_problem: Problem | None = None  # reported unless the record has a problem of its own already


def _span(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seq {first}-{last}"


def _check_hash(document: dict[str, Any], claimed: str, key: bytes | None) -> bool | None:
    algorithm = claimed.partition(":")[0]
    body = {name: value for name, value in document.items() if name != "hash"}
    if algorithm == HMAC_SHA256:
        if key is None:
            return None
        return hmac.compare_digest(document_hash(body, key), claimed)
    if algorithm == SHA256:
        return hmac.compare_digest(document_hash(body, None), claimed)
    return False


def _parse(stored: StoredLine, key: bytes | None, report: VerifyReport) -> tuple[str, _Record] | None:
    try:
        document = json.loads(stored.line)
    except ValueError:
        report.problems.append(Problem("unreadable", "not a JSON object", position=stored.position))
        return None
    if not isinstance(document, dict):
        report.problems.append(Problem("unreadable", "not a JSON object", position=stored.position))
        return None
    instance_id, seq, digest = document.get("instance_id"), document.get("seq"), document.get("hash")
    if not isinstance(instance_id, str) or not isinstance(seq, int) or not isinstance(digest, str):
        report.problems.append(
            Problem(
                "inserted",
                f"event {str(document.get('event_id'))[:40]} has no chain fields (instance_id, seq, hash): "
                "the spool did not write it",
                position=stored.position,
            )
        )
        return None
    if document.get("oversize_stub"):
        report.problems.append(
            Problem("modified", "an oversize event was stored as a stub", instance_id, seq, stored.position)
        )
        return None
    prev = document.get("prev_hash")
    record = _Record(stored.position, stored.line, seq, digest, prev if isinstance(prev, str) else None, None)
    record.column_problem = _check_columns(stored, document, instance_id, seq)
    record.hash_ok = _check_hash(document, digest, key)
    record.keyed = digest.partition(":")[0] == HMAC_SHA256
    return instance_id, record


def _moment(value: object) -> object:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


def _check_columns(stored: StoredLine, document: dict[str, Any], instance_id: str, seq: int) -> Problem | None:
    """The sink's copies of the line's fields (what `audit search` filters on) must say what the sealed line says:
    an edit of a column alone would hide a record from searches, or show it under another subject."""
    for name, value in stored.columns:
        sealed = document.get(name)
        if (_moment(value) == _moment(sealed)) if name == "time" else (value == sealed):
            continue
        return Problem(
            "modified",
            f"its {name} column says {str(value)[:80]!r}, its sealed line {str(sealed)[:80]!r}: searches would "
            "not find it where it belongs",
            instance_id,
            seq,
            stored.position,
        )
    return None


def _choose(candidates: list[_Record], expected_prev: str | None) -> _Record:
    """The record for one seq that belongs to the chain: verified and linked, else verified, else the first."""
    for record in candidates:
        if record.hash_ok is not False and (expected_prev is None or record.prev_hash == expected_prev):
            return record
    for record in candidates:
        if record.hash_ok is not False:
            return record
    return candidates[0]


def _check_order(instance_id: str, records: list[_Record], problems: list[Problem]) -> None:
    highest = 0
    for record in records:  # storage order
        if record.seq < highest:
            problems.append(
                Problem("reordered", f"stored after seq {highest}", instance_id, record.seq, record.position)
            )
        highest = max(highest, record.seq)


def _extra_copies(instance_id: str, seq: int, chosen: _Record, copies: list[_Record], problems: list[Problem]) -> None:
    for other in copies:
        if other is chosen:
            continue
        if other.line == chosen.line:
            problems.append(Problem("duplicate", "the same record is stored again", instance_id, seq, other.position))
        else:
            detail = f"a second record for seq {seq} that is not part of the chain (the chain's is at position "
            problems.append(Problem("inserted", f"{detail}{chosen.position})", instance_id, seq, other.position))


def _check_links(instance_id: str, by_seq: dict[int, list[_Record]], problems: list[Problem]) -> dict[int, _Record]:
    chosen: dict[int, _Record] = {}
    for seq in sorted(by_seq):
        previous = chosen.get(seq - 1)
        record = chosen[seq] = _choose(by_seq[seq], previous.hash if previous else None)
        _extra_copies(instance_id, seq, record, by_seq[seq], problems)
        if record.hash_ok is False:
            problems.append(
                Problem("modified", "its content does not match its hash", instance_id, seq, record.position)
            )
        elif previous is not None and record.prev_hash != previous.hash:
            detail = (
                f"the chain breaks after it: seq {seq}'s prev_hash is not its hash (it was changed and re-hashed, "
                f"or seq {seq} was replaced)"
            )
            problems.append(Problem("modified", detail, instance_id, seq - 1, previous.position))
        elif previous is None and seq == 1 and record.prev_hash is not None:
            problems.append(Problem("modified", "seq 1 must have no prev_hash", instance_id, seq, record.position))
    return chosen


def _check_sealing(instance_id: str, chosen: dict[int, _Record], plain_allowed: bool, problems: list[Problem]) -> None:
    """With a key. Plain SHA-256 records before an instance's first keyed one are proven by it (its HMAC covers
    its prev_hash, which is the last plain record's hash; a broken link is reported by `_check_links`). Plain
    records after a keyed one are a downgrade. An instance with no keyed record at all could have been made by
    anyone: accepted only when named (`plain_allowed`: it ran before the key was configured)."""
    downgraded: list[_Record] = []
    first_keyed: int | None = None
    for seq in sorted(chosen):
        record = chosen[seq]
        if record.keyed:
            first_keyed = seq if first_keyed is None else first_keyed
        elif first_keyed is not None:
            downgraded.append(record)
    if downgraded:
        detail = (
            f"{len(downgraded)} record(s) in {_span(downgraded[0].seq, downgraded[-1].seq)} sealed with plain "
            f"SHA-256 after seq {first_keyed}, which claims the HMAC key: re-sealed by someone without the key"
        )
        problems.append(Problem("modified", detail, instance_id, downgraded[0].seq, downgraded[0].position))
    if first_keyed is None and not plain_allowed:
        first = chosen[min(chosen)]
        detail = (
            f"none of its {len(chosen)} record(s) is sealed with the HMAC key that is configured, so anyone could "
            "have made them; an instance that ran before the key was configured can be named with "
            "--allow-plain-instance"
        )
        problems.append(Problem("unverifiable", detail, instance_id, first.seq, first.position))


def _check_gaps(instance_id: str, seqs: list[int], problems: list[Problem]) -> None:
    expected = 1
    for seq in seqs:
        if seq > expected:
            where = "before the first stored record" if expected == 1 else f"between seq {expected - 1} and {seq}"
            problems.append(Problem("deleted", f"{_span(expected, seq - 1)} missing {where}", instance_id, expected))
        expected = seq + 1


def _check_instance(
    instance_id: str,
    records: list[_Record],
    head: SpoolHead | None,
    sink: str,
    report: VerifyReport,
    keyed: bool,
    plain_allowed: bool,
) -> None:
    by_seq: dict[int, list[_Record]] = {}
    for record in records:
        by_seq.setdefault(record.seq, []).append(record)
    chosen = _check_links(instance_id, by_seq, report.problems)
    if keyed:
        _check_sealing(instance_id, chosen, plain_allowed, report.problems)
    # Storage order among the chain's own records (an inserted or duplicate copy is reported as such instead).
    members = {id(record) for record in chosen.values()}
    _check_order(instance_id, [record for record in records if id(record) in members], report.problems)
    seqs = sorted(by_seq)
    _check_gaps(instance_id, seqs, report.problems)
    if head is not None:
        _check_against_head(instance_id, seqs[-1], chosen[seqs[-1]], head, sink, report)
    report.instances.append(InstanceSummary(instance_id, len(records), seqs[0], seqs[-1]))


def _check_against_head(
    instance_id: str, last: int, record: _Record, head: SpoolHead, sink: str, report: VerifyReport
) -> None:
    delivered = head.cursors.get(sink)
    if last > head.seq:
        report.problems.append(
            Problem("inserted", f"the spool's chain ends at seq {head.seq}", instance_id, head.seq + 1)
        )
    elif delivered is not None and last < delivered:
        report.problems.append(
            Problem(
                "deleted",
                f"{_span(last + 1, delivered)} missing at the end (the spool {head.path.name} says this sink "
                f"stored up to seq {delivered})",
                instance_id,
                last + 1,
            )
        )
    elif last == head.seq and head.hash is not None and record.hash != head.hash:
        report.problems.append(
            Problem("modified", "the last record's hash differs from the spool's head", instance_id, last)
        )


def verify_lines(
    sink: str,
    lines: Iterable[StoredLine],
    *,
    key: bytes | None = None,
    heads: Sequence[SpoolHead] = (),
    plain_instances: Collection[str] = (),
) -> VerifyReport:
    """Verify every stored line of one sink. `heads` (the local spool's) add the end-of-chain checks. With `key`,
    every instance must be sealed with it from some record on (`_check_sealing`); `plain_instances` names
    instances that ran before the key was configured, whose records are all plain SHA-256."""
    report = VerifyReport(sink)
    instances: dict[str, list[_Record]] = {}
    for stored in lines:
        report.records += 1
        parsed = _parse(stored, key, report)
        if parsed is not None:
            instances.setdefault(parsed[0], []).append(parsed[1])
    if any(record.hash_ok is None for records in instances.values() for record in records):
        report.problems.append(
            Problem(
                "unverifiable",
                "records are HMAC-sealed and no key is configured (BASTION_AUDIT__HMAC_KEY_SECRET): their "
                "contents were not checked",
            )
        )
    heads_by_instance = {head.instance_id: head for head in heads}
    for instance_id, records in sorted(instances.items()):
        head = heads_by_instance.get(instance_id)
        _check_instance(instance_id, records, head, sink, report, key is not None, instance_id in plain_instances)
    reported = {(problem.instance_id, problem.seq) for problem in report.problems}
    for instance_id, records in instances.items():
        report.problems.extend(
            record.column_problem
            for record in records
            if record.column_problem is not None and (instance_id, record.seq) not in reported
        )
    for head in heads:  # an instance whose every record is gone leaves nothing in the sink to check
        delivered = head.cursors.get(sink) or 0
        if head.instance_id not in instances and delivered > 0:
            report.problems.append(
                Problem(
                    "deleted",
                    f"{_span(1, delivered)} missing: the sink holds no record of this instance, and the spool "
                    f"{head.path.name} says it stored up to seq {delivered}",
                    head.instance_id,
                    1,
                )
            )
    report.problems.sort(key=lambda p: (p.instance_id or "", p.seq if p.seq is not None else -1, p.position or 0))
    return report
