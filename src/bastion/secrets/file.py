"""Secrets from files: Kubernetes secret volumes, Docker secrets (`/run/secrets`), or a directory an operator
fills by hand. One file per secret; a name is a path below the root (or absolute)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path, PurePosixPath

from bastion.errors import InvalidInput, Unavailable
from bastion.secrets.base import Secret, SecretNotFound

__all__ = ["FileSecretsProvider"]


class FileSecretsProvider:
    """`<root>/<name>` (a name with slashes is a path below `root`; `..` is refused), or an absolute path.
    The version is the file's identity, so replacing the file is a rotation the cache notices."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return f"files under {self.root}"

    def path_of(self, name: str) -> Path:
        if not name or "\x00" in name:
            raise InvalidInput(f"secret name {name!r} is empty or contains NUL")
        if name.startswith("/"):
            return Path(name)
        parts = PurePosixPath(name).parts
        if any(part in ("..", ".") for part in parts):
            raise InvalidInput(f"secret name {name!r} may not contain '.' or '..' components")
        return self.root.joinpath(*parts)

    async def fetch(self, name: str) -> Secret:
        path = self.path_of(name)
        return await asyncio.to_thread(self._read, name, path)

    @staticmethod
    def _read(name: str, path: Path) -> Secret:
        try:
            with path.open("rb") as handle:
                stat = os.fstat(handle.fileno())
                raw = handle.read()
        except FileNotFoundError:
            raise SecretNotFound(f"secret {name!r}: {path} does not exist") from None
        except OSError as exc:
            raise Unavailable(f"secret {name!r}: cannot read {path}: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise Unavailable(f"secret {name!r}: {path} is not UTF-8 text") from None
        if not text:
            raise SecretNotFound(f"secret {name!r}: {path} is empty")
        return Secret.from_text(name, text, f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}")
