#!/usr/bin/env python3
"""One `refund_order` call from the MCP Python SDK 2.x in its default mode (`mcp.Client`, mode
"auto", no read timeout), to a gate where it waits for a person nobody is (bench/waits/world).

    python_wait.py [--progress] -- COMMAND ARGS...      # starts COMMAND over stdio
    python_wait.py [--progress] --url URL --token TOKEN  # streamable HTTP, Authorization: Bearer

--progress passes a progress callback (so the request carries a progress token). Prints one JSON
object: the negotiated protocol, the result (isError, text, _meta) or what the call raised
("error"), or how the client itself failed ("client_failed"), the seconds the call took, and when
each progress notification arrived.
"""
import argparse
import json
import os
import sys
import time

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client


def parse() -> tuple[argparse.Namespace, list[str]]:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(prog="python_wait.py")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--url")
    p.add_argument("--token")
    opts = p.parse_args(argv[:split])
    command = argv[split + 1 :]
    if not command and not opts.url:
        p.error("give -- COMMAND ARGS... or --url URL --token TOKEN")
    return opts, command


async def main(opts: argparse.Namespace, command: list[str]) -> None:
    if opts.url:
        headers = {"Authorization": f"Bearer {opts.token}"}
        server = streamable_http_client(opts.url, http_client=create_mcp_http_client(headers=headers))
    else:
        server = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    ticks: list[float] = []
    out["progress_at_s"] = ticks
    async with Client(server) as client:
        out["protocol"] = client.protocol_version
        t0 = time.monotonic()
        out["t0"] = t0

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            ticks.append(round(time.monotonic() - t0, 1))

        try:
            r = await client.call_tool(
                "refund_order",
                {"order_id": "A-1001", "amount_cents": 500, "reason": "late"},
                progress_callback=on_progress if opts.progress else None,
            )
            text = "".join(getattr(c, "text", "") for c in r.content)
            out["result"] = {"isError": r.is_error, "text": text, "meta": r.meta}
        except Exception as e:  # noqa: BLE001 - what the SDK raised is the measurement
            out["error"] = f"{type(e).__name__}: {e}"
        out["after_s"] = round(time.monotonic() - t0, 1)


def describe(e: BaseException) -> str:
    """One line for what the SDK raised, exception groups flattened."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}"


if __name__ == "__main__":
    # What the call returned or raised, and when; a failure of the client itself (e.g. its HTTP
    # transport's read timeout fails its task group) is reported too.
    out: dict = {}
    try:
        anyio.run(main, *parse())
    except Exception as e:  # noqa: BLE001 - the failure is the measurement
        out["client_failed"] = describe(e)
    t0 = out.pop("t0", None)
    if t0 is not None and "after_s" not in out:
        out["after_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(out, default=str), flush=True)
