#!/usr/bin/env python3
"""An agent built on the official MCP Python SDK (v2.x) in its default mode: `mcp.Client` with
`mode="auto"`, which probes `server/discover` and so speaks the newest protocol (2026-07-28) to a
server that offers it. Every result is validated by the SDK against that version's wire models.

Usage:
    echo PLAN | python3 tests/peers/python_client_default.py -- COMMAND ARGS...

Starts COMMAND as an MCP server over stdio. PLAN is a JSON object; every key is optional:

    {"read": [uri, ...],
     "prompts": [{"name": ..., "arguments": {...}}, ...],
     "complete": [{"prompt": name, "argument": {"name": ..., "value": ...}}, ...],
     "calls": [{"name": ..., "arguments": {...}}, ...],
     "answers": {"elicitation": {...content...}, "sampling": "text"}}

With "answers", the client declares elicitation and/or sampling and answers a tool server's
questions with them: an elicitation is accepted with that content, a sampling request gets that
text (model "python-client-default"). Every question it was asked is reported under "asked".

It lists tools, resources and prompts, performs the plan in that order, and prints ONE JSON
object on stdout:

    {"protocol": version,
     "tools": [name, ...], "resources": [uri, ...], "prompts": [name, ...],
     "reads": [{"uri", "text"} | {"uri", "error"}, ...],
     "gets": [{"name", "text"} | {"name", "error"}, ...],
     "completions": [{"prompt", "values"} | {"prompt", "error"}, ...],
     "results": [{"name", "isError", "text"} | {"name", "error"}, ...],
     "asked": [{"kind": "elicitation" | "sampling", "message": text}, ...]}

An operation the SDK refuses (a result invalid for the negotiated version raises
`pydantic.ValidationError`; a JSON-RPC error raises `MCPError`) is reported under "error" with
the exception's type, and the run goes on. A failure to connect or list exits non-zero.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
from mcp import Client, types
from mcp.client.stdio import StdioServerParameters


def die(msg: str, code: int = 1) -> None:
    print(f"python_client_default: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def failure(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def text_of(blocks: list[Any]) -> str:
    return "".join(getattr(b, "text", "") or "" for b in blocks)


def callbacks(answers: dict[str, Any], asked: list[dict[str, str]]) -> dict[str, Any]:
    """The Client's callbacks for the questions the plan answers (none: not declared)."""
    out: dict[str, Any] = {}
    if "elicitation" in answers:

        async def elicit(_context: Any, params: Any) -> types.ElicitResult:
            asked.append({"kind": "elicitation", "message": getattr(params, "message", "")})
            return types.ElicitResult(action="accept", content=answers["elicitation"])

        out["elicitation_callback"] = elicit
    if "sampling" in answers:

        async def sample(_context: Any, params: Any) -> types.CreateMessageResult:
            asked.append({"kind": "sampling", "message": text_of([m.content for m in params.messages])})
            return types.CreateMessageResult(
                role="assistant",
                content=types.TextContent(type="text", text=answers["sampling"]),
                model="python-client-default",
            )

        out["sampling_callback"] = sample
    return out


async def run(command: list[str], plan: dict[str, Any]) -> dict[str, Any]:
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    asked: list[dict[str, str]] = []
    handlers = callbacks(plan.get("answers") or {}, asked)
    async with Client(params, read_timeout_seconds=60, **handlers) as client:
        out: dict[str, Any] = {"protocol": client.protocol_version, "asked": asked}
        out["tools"] = [t.name for t in (await client.list_tools()).tools]
        out["resources"] = [str(r.uri) for r in (await client.list_resources()).resources]
        out["prompts"] = [p.name for p in (await client.list_prompts()).prompts]
        out["reads"] = []
        for uri in plan.get("read", []):
            try:
                r = await client.read_resource(uri, cache_mode="bypass")
                out["reads"].append({"uri": uri, "text": "".join(getattr(c, "text", "") or "" for c in r.contents)})
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                out["reads"].append({"uri": uri, "error": failure(e)})
        out["gets"] = []
        for p in plan.get("prompts", []):
            try:
                r = await client.get_prompt(p["name"], p.get("arguments"))
                out["gets"].append({"name": p["name"], "text": text_of([m.content for m in r.messages])})
            except Exception as e:  # noqa: BLE001
                out["gets"].append({"name": p["name"], "error": failure(e)})
        out["completions"] = []
        for c in plan.get("complete", []):
            try:
                r = await client.complete(types.PromptReference(type="ref/prompt", name=c["prompt"]), c["argument"])
                out["completions"].append({"prompt": c["prompt"], "values": r.completion.values})
            except Exception as e:  # noqa: BLE001
                out["completions"].append({"prompt": c["prompt"], "error": failure(e)})
        out["results"] = []
        for call in plan.get("calls", []):
            try:
                r = await client.call_tool(call["name"], call.get("arguments", {}))
                out["results"].append({"name": call["name"], "isError": bool(r.is_error), "text": text_of(r.content)})
            except Exception as e:  # noqa: BLE001
                out["results"].append({"name": call["name"], "error": failure(e)})
        return out


def main() -> None:
    argv = sys.argv[1:]
    if "--" not in argv or argv.index("--") + 1 >= len(argv):
        die("usage: python_client_default.py -- COMMAND ARGS...", 2)
    command = argv[argv.index("--") + 1 :]
    try:
        plan = json.load(sys.stdin)
    except json.JSONDecodeError as e:
        die(f"stdin is not valid JSON: {e}", 2)
    try:
        output = anyio.run(run, command, plan)
    except BaseException as e:  # noqa: BLE001 - any failure here is a protocol failure
        if isinstance(e, SystemExit):
            raise
        die(failure(e))
    print(json.dumps(output), flush=True)


if __name__ == "__main__":
    main()
