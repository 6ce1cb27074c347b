"""The baseline: the SDK's best case for `get_file_contents`, with no governance at all.

A bare `MCPServer` whose one `async def` tool returns the benchmark file's text from memory, served in the same
transport mode as the governed server (stateless, plain JSON) under uvicorn with one worker. No key check, no
policy, no git, no audit: whatever the governed server costs beyond this is what mcp-bastion adds.

    python bench/bare_server.py --port 8201 --file /path/to/file.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette

__all__ = ["build_app"]


def build_app(content: str) -> Starlette:
    mcp = MCPServer("bench-bare", subscriptions=False)

    @mcp.tool()
    async def get_file_contents(owner: str, repo: str, path: str) -> str:
        """Return the benchmark file (the arguments are accepted and ignored)."""
        return content

    return mcp.streamable_http_app(json_response=True, stateless_http=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", type=Path, required=True, help="The file whose text the tool returns.")
    args = parser.parse_args()
    app = build_app(args.file.read_bytes().decode("utf-8"))
    # Same uvicorn settings as `bastion serve`: loop and HTTP parser "auto" (uvloop, httptools when installed).
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
