// bearer-proxy: adds `Authorization: Bearer TOKEN` to every HTTP request and streams the rest
// through unchanged (bodies, SSE responses, status codes, headers).
//
// The MCP conformance suite cannot send a header of its own, and Airlock refuses an agent without
// a token, so the through-Airlock run puts this in front:
//   node bearer-proxy.mjs TARGET_URL TOKEN   (prints "listening on PORT" once ready)
// It listens on 127.0.0.1 only and must never be used for anything but running the suite.
import http from 'node:http';

const [target, token] = process.argv.slice(2);
if (!target || !token) {
  console.error('usage: node bearer-proxy.mjs TARGET_URL TOKEN');
  process.exit(2);
}
const to = new URL(target);

const server = http.createServer((req, res) => {
  const headers = { ...req.headers, host: to.host, authorization: `Bearer ${token}` };
  const upstream = http.request(
    { hostname: to.hostname, port: to.port, path: req.url, method: req.method, headers },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on('error', (e) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`bearer-proxy: ${e.message}`);
  });
  // a client that hangs up (an SSE stream it closes) ends the upstream request too
  res.on('close', () => upstream.destroy());
  req.pipe(upstream);
});
server.listen(0, '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
