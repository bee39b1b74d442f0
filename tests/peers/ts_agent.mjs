// A scripted MCP agent built on the official MCP TypeScript SDK (`@modelcontextprotocol/sdk`, the
// version `.ci/install-peers` pins), from $AIRLOCK_PEERS_DIR/node_modules.
//
//   echo '[{"name": "search_orders", "arguments": {"query": "A-1001"}}]' \
//     | node tests/peers/ts_agent.mjs [--timeout-ms MS] -- COMMAND ARGS...
//   ... | node tests/peers/ts_agent.mjs [--timeout-ms MS] --url http://127.0.0.1:PORT/mcp --token TOKEN
//
// Starts COMMAND as an MCP server over stdio (with this process's environment; its stderr passes
// through to ours), or connects to URL over streamable HTTP sending `Authorization: Bearer TOKEN`.
// It initializes, lists the tools, then makes each call from the JSON list on stdin, in order, as
// an agent that waits for a person would: with a progress callback, `resetTimeoutOnProgress` and
// a per-request timeout of MS (default 60000, the SDK's own). It prints ONE JSON object on stdout:
//
//   {"protocol": "2025-11-25",
//    "tools": [name, ...],
//    "results": [{"name", "isError", "text", "meta", "progress"}          // a tool result
//               | {"name", "error": {"code", "message"}}, ...]}          // a JSON-RPC error
//
// `text` is the result's text content joined, `meta` its `_meta` (or null), `progress` how many
// progress notifications arrived while the call waited. A failure to connect or list prints a
// message on stderr and exits non-zero.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const peers = process.env.AIRLOCK_PEERS_DIR || join(import.meta.dirname, '..', '..', '.peers');
const sdk = (path) =>
  import(pathToFileURL(join(peers, 'node_modules', '@modelcontextprotocol', 'sdk', 'dist', 'esm', path)).href);

function die(message, code = 1) {
  console.error(`ts_agent: ${message}`);
  process.exit(code);
}

function parseArgs(argv) {
  const split = argv.indexOf('--');
  const own = split === -1 ? argv : argv.slice(0, split);
  const command = split === -1 ? [] : argv.slice(split + 1);
  const opts = { timeoutMs: 60000, url: null, token: null, command };
  for (let i = 0; i < own.length; i += 2) {
    const [key, value] = [own[i], own[i + 1]];
    if (value === undefined) die(`${key} needs a value`, 2);
    if (key === '--url') opts.url = value;
    else if (key === '--token') opts.token = value;
    else if (key === '--timeout-ms') opts.timeoutMs = Number(value);
    else die(`unknown option ${key}`, 2);
  }
  if (!opts.url && command.length === 0) die('usage: ts_agent.mjs [--timeout-ms MS] (--url URL --token TOKEN | -- COMMAND ARGS...)', 2);
  if (!Number.isFinite(opts.timeoutMs) || opts.timeoutMs <= 0) die('--timeout-ms must be a positive number', 2);
  return opts;
}

async function readCalls() {
  let input = '';
  for await (const chunk of process.stdin) input += chunk;
  let calls;
  try {
    calls = JSON.parse(input);
  } catch (e) {
    die(`stdin is not valid JSON: ${e.message}`, 2);
  }
  if (!Array.isArray(calls)) die('stdin must be a JSON list of {name, arguments} objects', 2);
  calls.forEach((call, i) => {
    if (typeof call?.name !== 'string') die(`call #${i} must be an object with a string 'name'`, 2);
  });
  return calls;
}

const opts = parseArgs(process.argv.slice(2));
const calls = await readCalls();
const { Client } = await sdk('client/index.js');
const { StdioClientTransport } = await sdk('client/stdio.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');

const transport = opts.url
  ? new StreamableHTTPClientTransport(new URL(opts.url), {
      requestInit: { headers: opts.token ? { Authorization: `Bearer ${opts.token}` } : {} },
    })
  : new StdioClientTransport({
      command: opts.command[0],
      args: opts.command.slice(1),
      env: { ...process.env },
      stderr: 'inherit',
    });
// The SDK tells the transport the negotiated version; stdio has no use for it, so keep it here.
let protocol = null;
const told = transport.setProtocolVersion?.bind(transport);
transport.setProtocolVersion = (version) => {
  protocol = version;
  told?.(version);
};

const client = new Client({ name: 'airlock-ts-agent', version: '1' });
const out = { protocol: null, tools: [], results: [] };
try {
  await client.connect(transport);
  out.protocol = protocol;
  out.tools = (await client.listTools()).tools.map((t) => t.name);
} catch (e) {
  die(`connect or tools/list failed: ${e.message}`);
}
for (const call of calls) {
  let progress = 0;
  try {
    const r = await client.callTool({ name: call.name, arguments: call.arguments ?? {} }, undefined, {
      timeout: opts.timeoutMs,
      resetTimeoutOnProgress: true,
      onprogress: () => {
        progress += 1;
      },
    });
    out.results.push({
      name: call.name,
      isError: r.isError === true,
      text: (r.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n'),
      meta: r._meta ?? null,
      progress,
    });
  } catch (e) {
    out.results.push({ name: call.name, error: { code: e.code ?? null, message: e.message } });
  }
}
console.log(JSON.stringify(out));
await client.close();
process.exit(0);
