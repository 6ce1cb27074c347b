"""The git credential helper mcp-bastion configures for GitHub remotes. Standard library only: git runs this file
as `<python> -I <this file> get|store|erase` (no bastion import: it starts in a few tens of milliseconds).

It answers `get` with the token found in its environment (BASTION_GIT_TOKEN, set by bastion on the one git
process that talks to the remote, inherited by git's children), and only when git asks for exactly the protocol
and host bastion named (BASTION_GIT_PROTOCOL, BASTION_GIT_HOST): a redirect to another host gets nothing.
`store` and `erase` are ignored: bastion keeps no credential anywhere git could write one. See
docs/github-app.md for why the token travels in the environment and never in an argument list or a file.
"""

from __future__ import annotations

import os
import sys

__all__ = ["answer", "main"]


def _read_request(lines: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            break
        key, separator, value = line.partition("=")
        if separator:
            fields[key] = value
    return fields


def answer(action: str, request: dict[str, str], environ: dict[str, str]) -> str:
    """What to write to git for `action` and its `request` fields: the credential, or nothing."""
    token = environ.get("BASTION_GIT_TOKEN", "")
    username = environ.get("BASTION_GIT_USERNAME", "x-access-token")
    if action != "get" or not token:
        return ""
    if request.get("protocol", "").lower() != environ.get("BASTION_GIT_PROTOCOL", "https").lower():
        return ""
    if request.get("host", "").lower() != environ.get("BASTION_GIT_HOST", "").lower():
        return ""
    if any(char in value for value in (token, username) for char in "\r\n\x00"):
        return ""  # would corrupt the protocol
    return f"username={username}\npassword={token}\n"


def main(argv: list[str]) -> int:
    action = argv[1] if len(argv) > 1 else ""
    request = _read_request(sys.stdin.readlines())
    sys.stdout.write(answer(action, request, dict(os.environ)))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
