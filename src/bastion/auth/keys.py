"""API keys: their format, and the store that issues, lists and revokes them.

A key is `bst_<key_id>_<secret>`: `key_id` (12 hex characters) names the key in listings, logs and audit events;
`secret` is 32 random bytes, base64url. Only `sha256(key)` is stored. A fast hash is the right tool here, unlike
for passwords: the key has 256 bits of entropy, so there is nothing to brute-force, and verification runs on
every request. The plaintext exists once, in the return value of `KeyStore.create`.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bastion.errors import InvalidInput, NotFound
from bastion.store.db import api_keys, write_transaction

__all__ = [
    "KEY_ID_PATTERN",
    "KEY_LENGTH",
    "KEY_PREFIX",
    "ApiKeyRecord",
    "KeyStatus",
    "KeyStore",
    "hash_key",
    "keys_match",
    "parse_key_id",
]

KEY_PREFIX = "bst_"
KEY_ID_BYTES = 6  # 12 hex characters: unique enough to name a key, short enough to read aloud
SECRET_BYTES = 32
# bst_ + 12 hex + _ + 43 base64url characters (32 bytes, unpadded). The secret may itself contain `_`.
KEY_ID_PATTERN = re.compile(r"[0-9a-f]{12}")  # a key's id, as `bastion keys list` shows it
KEY_PATTERN = re.compile(rf"bst_({KEY_ID_PATTERN.pattern})_[A-Za-z0-9_-]{{43}}")
KEY_LENGTH = len(KEY_PREFIX) + 2 * KEY_ID_BYTES + 1 + 43

KeyStatus = Literal["active", "expired", "revoked"]


def hash_key(key: str) -> str:
    """What the store keeps instead of the key (hex sha256)."""
    return hashlib.sha256(key.encode()).hexdigest()


def keys_match(key: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented key with a stored hash."""
    return hmac.compare_digest(hash_key(key), stored_hash)


def parse_key_id(key: str) -> str | None:
    """The key id of a well-formed key, or None when `key` does not have the shape of a bastion API key."""
    match = KEY_PATTERN.fullmatch(key)
    return match.group(1) if match else None


def _new_key() -> tuple[str, str]:
    key_id = secrets.token_hex(KEY_ID_BYTES)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """One issued key as stored. `key_hash` stays out of repr so a logged record never carries it."""

    key_id: str
    subject: str
    groups: tuple[str, ...]
    description: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    key_hash: str = field(repr=False)

    def status(self, now: datetime | None = None) -> KeyStatus:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC)):
            return "expired"
        return "active"


def _record(row: sa.Row[Any]) -> ApiKeyRecord:
    mapping = row._mapping
    return ApiKeyRecord(
        key_id=mapping["key_id"],
        subject=mapping["subject"],
        groups=tuple(mapping["groups"]),
        description=mapping["description"],
        created_at=mapping["created_at"],
        expires_at=mapping["expires_at"],
        revoked_at=mapping["revoked_at"],
        key_hash=mapping["key_hash"],
    )


MAX_NAME_CHARS = 256  # a subject or group name, as for OIDC claims


def _clean_name(name: str, what: str) -> str:
    """A subject or group name: printed in tables, logs and audit lines, so one line of printable text."""
    name = name.strip()
    if not name:
        raise InvalidInput(f"a {what} cannot be empty")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput(f"a {what} is at most {MAX_NAME_CHARS} characters (got {len(name)})")
    if not name.isprintable():
        raise InvalidInput(f"a {what} cannot contain line breaks, tabs or control characters")
    return name


def _clean_groups(groups: Iterable[str]) -> list[str]:
    return sorted({_clean_name(group, "group name") for group in groups})


# Built once: `get` runs on every cold authentication, and rebuilding the statement costs a cache-key walk.
_SELECT_BY_ID = api_keys.select().where(api_keys.c.key_id == sa.bindparam("key_id"))


class KeyStore:
    """API keys in the state store. Every method is a short blocking DB call: from async code, run it in a thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self,
        subject: str,
        groups: Iterable[str] = (),
        expires_at: datetime | None = None,
        description: str | None = None,
    ) -> tuple[ApiKeyRecord, str]:
        """Issue a key. Returns its record and the plaintext key, which is never stored and cannot be recovered."""
        if not subject.strip():
            raise InvalidInput("a key needs a subject (the user or service it acts as)")
        subject = _clean_name(subject, "subject")
        now = datetime.now(UTC)
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise InvalidInput("expires_at must be timezone-aware (UTC)")
            if expires_at <= now:
                raise InvalidInput(f"expiry {expires_at.isoformat()} is in the past")
            expires_at = expires_at.astimezone(UTC)
        key_id, key = _new_key()
        record = ApiKeyRecord(
            key_id=key_id,
            subject=subject,
            groups=tuple(_clean_groups(groups)),
            description=description or None,
            created_at=now,
            expires_at=expires_at,
            revoked_at=None,
            key_hash=hash_key(key),
        )
        with write_transaction(self.engine) as connection:
            connection.execute(
                api_keys.insert().values(
                    key_id=record.key_id,
                    key_hash=record.key_hash,
                    subject=record.subject,
                    groups=list(record.groups),
                    description=record.description,
                    created_at=record.created_at,
                    expires_at=record.expires_at,
                    revoked_at=None,
                )
            )
        return record, key

    def get(self, key_id: str) -> ApiKeyRecord | None:
        with self.engine.connect() as connection:
            row = connection.execute(_SELECT_BY_ID, {"key_id": key_id}).first()
        return None if row is None else _record(row)

    def list(self, include_revoked: bool = True) -> builtins.list[ApiKeyRecord]:
        """Every key, oldest first."""
        statement = api_keys.select().order_by(api_keys.c.created_at, api_keys.c.key_id)
        if not include_revoked:
            statement = statement.where(api_keys.c.revoked_at.is_(None))
        with self.engine.connect() as connection:
            return [_record(row) for row in connection.execute(statement)]

    def revoke(self, key_id: str) -> ApiKeyRecord:
        """Revoke a key from now on. Revoking an already revoked key changes nothing and returns it as it was
        (its `revoked_at` then predates this call)."""
        with write_transaction(self.engine) as connection:
            connection.execute(
                api_keys.update()
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            row = connection.execute(_SELECT_BY_ID, {"key_id": key_id}).first()
        if row is None:
            raise NotFound(f"no API key with id {key_id!r}; `bastion keys list` shows the ids")
        return _record(row)
