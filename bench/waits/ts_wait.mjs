// One `refund_order` call from the MCP TypeScript SDK (`@modelcontextprotocol/sdk` from
// $AIRLOCK_PEERS_DIR/node_modules, default .peers), to a gate where it waits for a person nobody
// is (bench/waits/world).
//
//   node ts_wait.mjs [--progress] [--reset] [--tasks] -- COMMAND ARGS...     # stdio
//   node ts_wait.mjs [--progress] [--reset] [--tasks] --url URL --token TOKEN  # streamable HTTP
//
// Without flags it is `client.callTool(params)` as the SDK comes. --progress passes `onprogress`
// (which makes the request carry a progress token), --reset `resetTimeoutOnProgress: true`,
// --tasks declares the Tasks extension (`capabilities.extensions["io.modelcontextprotocol/tasks"]`,
// which the SDK does not do itself). Prints one JSON object: the negotiated protocol, the result
// (isError, text, _meta, its keys) or the error, the seconds the call took, and when each
// progress notification arrived.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const peers = process.env.AIRLOCK_PEERS_DIR || join(import.meta.dirname, '..', '..', '.peers');
const sdk = (path) =>
  import(pathToFileURL(join(peers, 'node_modules', '@modelcontextprotocol', 'sdk', 'dist', 'esm', path)).href);
const { Client } = await sdk('client/index.js');
const { StdioClientTransport } = await sdk('client/stdio.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');

const argv = process.argv.slice(2);
const split = argv.indexOf('--');
const own = split === -1 ? argv : argv.slice(0, split);
const command = split === -1 ? [] : argv.slice(split + 1);
const flag = (name) => own.includes(`--${name}`);
const value = (name) => (own.indexOf(`--${name}`) === -1 ? undefined : own[own.indexOf(`--${name}`) + 1]);
if (!value('url') && command.length === 0) {
  console.error('usage: ts_wait.mjs [--progress] [--reset] [--tasks] (-- COMMAND ARGS... | --url URL --token TOKEN)');
  process.exit(2);
}
const transport = value('url')
  ? new StreamableHTTPClientTransport(new URL(value('url')), {
      requestInit: { headers: { Authorization: `Bearer ${value('token')}` } },
    })
  : new StdioClientTransport({ command: command[0], args: command.slice(1), env: { ...process.env }, stderr: 'ignore' });
const out = { protocol: null };
const told = transport.setProtocolVersion?.bind(transport);
transport.setProtocolVersion = (version) => {
  out.protocol = version;
  told?.(version);
};
const capabilities = flag('tasks') ? { extensions: { 'io.modelcontextprotocol/tasks': {} } } : {};
const client = new Client({ name: 'ts-wait', version: '1' }, { capabilities });
await client.connect(transport);
const ticks = [];
const t0 = Date.now();
const options = {};
if (flag('progress')) options.onprogress = () => ticks.push((Date.now() - t0) / 1000);
if (flag('reset')) options.resetTimeoutOnProgress = true;
try {
  const params = { name: 'refund_order', arguments: { order_id: 'A-1001', amount_cents: 500, reason: 'late' } };
  const r = await client.callTool(params, undefined, options);
  const text = (r.content ?? []).map((c) => c.text ?? '').join('');
  out.result = { isError: r.isError ?? false, text, meta: r._meta, keys: Object.keys(r) };
} catch (e) {
  out.error = `${e.constructor.name} ${e.code}: ${e.message}`;
}
out.after_s = (Date.now() - t0) / 1000;
out.progress_at_s = ticks;
console.log(JSON.stringify(out));
await client.close();
process.exit(0);
