#!/usr/bin/env python3
"""A scripted MCP agent built on the official MCP Python SDK (v2.x).

Usage:
    echo '[{"name": "echo", "arguments": {"text": "hi"}}]' \
        | python3 tests/peers/python_agent.py [--timeout SECS] [--rpc-errors-as-results] -- COMMAND ARGS...
    ... | python3 tests/peers/python_agent.py --url http://127.0.0.1:PORT/mcp --token TOKEN
    ... | python3 tests/peers/python_agent.py --url URL --oauth-client ID:SECRET --oauth-issuer ISSUER [--oauth-scope S]

Starts COMMAND as an MCP server over stdio (or connects to URL over streamable HTTP, sending
`Authorization: Bearer TOKEN`, or with --oauth-client a token the SDK's own
ClientCredentialsOAuthProvider gets: it reads the 401's resource_metadata, the protected-resource
metadata, the issuer's metadata, and asks its token endpoint with resource=), initializes, lists its
tools, then
performs each call from the JSON list on stdin, in order, and prints ONE JSON
object on stdout:

    {"tools": [name, ...],
     "results": [{"name": ..., "isError": bool, "text": concatenated text content}, ...]}

Any protocol failure (handshake, JSON-RPC error, timeout, unparsable server
output, server exit) prints a message on stderr and exits non-zero. With
--rpc-errors-as-results, a JSON-RPC error answering a tools/call is instead
reported as {"name", "isError": true, "text": message, "rpcError": {"code",
"message"}} and the run continues.

The child gets this process's full environment (the SDK default passes only
HOME/PATH/... through), and its stderr is passed through to ours.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import anyio
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp.shared.exceptions import MCPError


def die(msg: str, code: int = 1) -> None:
    print(f"python_agent: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="python_agent.py")
    parser.add_argument("--url", help="connect over streamable HTTP instead of starting a command")
    parser.add_argument("--token", help="bearer token sent with every HTTP request")
    parser.add_argument("--oauth-client", help="ID:SECRET: get a token by OAuth client credentials")
    parser.add_argument("--oauth-issuer", help="the authorization server the client belongs to")
    parser.add_argument("--oauth-scope", help="scopes to ask for (space-separated)")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    parser.add_argument(
        "--rpc-errors-as-results",
        action="store_true",
        help="report JSON-RPC errors on tools/call as error results instead of failing",
    )
    opts = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    if not command and not opts.url:
        die("usage: python_agent.py [options] (--url URL | -- COMMAND ARGS...)", 2)
    return opts, command


def read_calls() -> list[dict[str, Any]]:
    try:
        calls = json.load(sys.stdin)
    except json.JSONDecodeError as e:
        die(f"stdin is not valid JSON: {e}", 2)
    if not isinstance(calls, list):
        die("stdin must be a JSON list of {name, arguments} objects", 2)
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            die(f"call #{i} must be an object with a string 'name'", 2)
        if not isinstance(call.get("arguments", {}), dict):
            die(f"call #{i}: 'arguments' must be an object", 2)
    return calls


class MemoryStorage:
    """Tokens and client information kept for this run only."""

    def __init__(self) -> None:
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens) -> None:
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info) -> None:
        self.client_info = client_info


def oauth_provider(opts: argparse.Namespace) -> Any:
    from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider

    client_id, _, secret = opts.oauth_client.partition(":")
    return ClientCredentialsOAuthProvider(
        server_url=opts.url,
        storage=MemoryStorage(),
        client_id=client_id,
        client_secret=secret,
        scope=opts.oauth_scope,
        issuer=opts.oauth_issuer,
    )


def text_of(result: types.CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def run(opts: argparse.Namespace, command: list[str], calls: list[dict[str, Any]]) -> dict[str, Any]:
    transport_faults: list[Exception] = []

    async def on_message(message: Any) -> None:
        # The SDK routes transport-level faults (e.g. a non-JSON line on the
        # server's stdout) here and otherwise drops them silently.
        if isinstance(message, Exception):
            transport_faults.append(message)

    if opts.url:
        headers = {"Authorization": f"Bearer {opts.token}"} if opts.token else {}
        auth = oauth_provider(opts) if opts.oauth_client else None
        transport = streamable_http_client(opts.url, http_client=create_mcp_http_client(headers=headers, auth=auth))
    else:
        params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
        transport = stdio_client(params)
    async with transport as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write, read_timeout_seconds=opts.timeout, message_handler=on_message) as session:
            init = await session.initialize()
            print(
                f"python_agent: connected to {init.server_info.name} (protocol {init.protocol_version})",
                file=sys.stderr,
                flush=True,
            )
            listing = await session.list_tools()
            tools = [tool.name for tool in listing.tools]
            results: list[dict[str, Any]] = []
            for call in calls:
                name = call["name"]
                try:
                    result = await session.call_tool(name, call.get("arguments", {}))
                except MCPError as e:
                    if not opts.rpc_errors_as_results:
                        raise RuntimeError(f"tools/call {name!r} failed: JSON-RPC error {e.code}: {e.message}") from e
                    results.append(
                        {
                            "name": name,
                            "isError": True,
                            "text": e.message,
                            "rpcError": {"code": e.code, "message": e.message},
                        }
                    )
                    continue
                results.append({"name": name, "isError": bool(result.is_error), "text": text_of(result)})
            if transport_faults:
                raise RuntimeError(f"transport fault: {transport_faults[0]!r}")
            return {"tools": tools, "results": results}


def describe(exc: BaseException) -> str:
    """Flatten anyio's exception groups into one readable line."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    if isinstance(exc, MCPError):
        return f"JSON-RPC error {exc.code}: {exc.message}"
    # an HTTP failure names the request it was (which server, which step)
    try:
        where = f" ({exc.request.method} {exc.request.url})"  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        where = ""
    return f"{type(exc).__name__}: {exc}{where}"


def main() -> None:
    opts, command = parse_args(sys.argv[1:])
    calls = read_calls()
    try:
        output = anyio.run(run, opts, command, calls)
    except KeyboardInterrupt:
        die("interrupted", 130)
    except BaseException as e:  # noqa: BLE001 - any failure is a protocol failure here
        if isinstance(e, SystemExit):
            raise
        die(describe(e))
    print(json.dumps(output), flush=True)


if __name__ == "__main__":
    main()
