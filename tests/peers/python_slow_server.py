#!/usr/bin/env python3
"""A tool server built on the official MCP Python SDK (v2.x) whose one tool is slow and records
whether it was cancelled.

Usage:
    python3 tests/peers/python_slow_server.py --record PATH            # over stdio
    python3 tests/peers/python_slow_server.py --record PATH --http PORT  # streamable HTTP at
                                                                         # http://127.0.0.1:PORT/mcp

Tool `slow` ({"seconds": number, default 30}) appends the line `started` to PATH, sleeps that long
in 0.1 s steps, appends `finished` and returns "done". When the SDK cancels its handler (it does
so on `notifications/cancelled` for the request) it appends `cancelled` instead and lets the
cancellation go on. Each line is flushed at once, so a test can poll the file.
"""

from __future__ import annotations

import argparse

import anyio
from mcp.server.mcpserver import MCPServer


def main() -> None:
    parser = argparse.ArgumentParser(prog="python_slow_server.py")
    parser.add_argument("--record", required=True, help="file the tool appends started/finished/cancelled to")
    parser.add_argument("--http", type=int, help="serve streamable HTTP on 127.0.0.1:PORT instead of stdio")
    opts = parser.parse_args()

    def record(line: str) -> None:
        with open(opts.record, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()

    server = MCPServer("slow", log_level="WARNING")

    @server.tool(description="Sleeps, then says done; records whether it was cancelled.")
    async def slow(seconds: float = 30.0) -> str:
        record("started")
        try:
            for _ in range(int(seconds * 10)):
                await anyio.sleep(0.1)
        except anyio.get_cancelled_exc_class():
            record("cancelled")
            raise
        record("finished")
        return "done"

    if opts.http is None:
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=opts.http)


if __name__ == "__main__":
    main()
