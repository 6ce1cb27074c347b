"""The authentication seam: a bearer credential in, a Principal out."""

from __future__ import annotations

from typing import Protocol

from bastion.principal import Principal

__all__ = ["Authenticator"]


class Authenticator(Protocol):
    """Verifies one kind of bearer credential."""

    def accepts(self, token: str) -> bool:
        """Whether this authenticator recognises the token's shape (cheap; no verification)."""
        ...

    async def authenticate(self, token: str) -> Principal:
        """The caller behind `token`, or raise `Unauthenticated` with a reason the caller can act on."""
        ...
