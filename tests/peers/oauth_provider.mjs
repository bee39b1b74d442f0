// A real OAuth 2.1 authorization server for the OAuth-agent tests: the npm package
// `oidc-provider` (certified), issuing JWT access tokens (RFC 9068) to machine clients through
// the client credentials grant with a resource indicator (RFC 8707) naming Airlock.
//
//   node oauth_provider.mjs PORT RESOURCE
//
// Serves http://127.0.0.1:PORT (the issuer) with three clients, each with secret `<id>-secret`:
// `agent-1` and `reader` (scopes mcp:tools mcp:read) and `narrow` (mcp:read only). Access tokens
// for RESOURCE are JWTs signed RS256 with a key this script made (kid `test-key`). Once it
// listens it prints one line, `ready {JSON}`: the issuer and tokens this script signed itself
// with jose (https://github.com/panva/jose, the provider's own JOSE library):
//   valid (a control: everything right), expired, not_yet_valid, wrong_issuer, wrong_audience,
//   unsigned (alg none), tampered (claims changed after signing), wrong_key (another key, same
//   kid), unknown_key (another key and kid), no_actor (no sub), shared_secret (HS256).
// The packages come from $AIRLOCK_PEERS_DIR/node_modules (`.ci/install-peers` installs them).
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [port, resource] = process.argv.slice(2);
if (!port || !resource) {
  console.error('usage: oauth_provider.mjs PORT RESOURCE');
  process.exit(2);
}
const peers = process.env.AIRLOCK_PEERS_DIR || join(import.meta.dirname, '..', '..', '.peers');
const load = (pkg, file) => import(pathToFileURL(join(peers, 'node_modules', pkg, file)).href);
const { default: Provider, errors } = await load('oidc-provider', 'lib/index.js');
const jose = await load('jose', 'dist/webapi/index.js');

const issuer = `http://127.0.0.1:${port}`;
const kid = 'test-key';
const signing = await jose.generateKeyPair('RS256', { extractable: true });
const foreign = await jose.generateKeyPair('RS256', { extractable: true });
const privateJwk = { ...(await jose.exportJWK(signing.privateKey)), kid, alg: 'RS256', use: 'sig' };

const SCOPE = 'mcp:tools mcp:read';
const client = (id, scope) => ({
  client_id: id,
  client_secret: `${id}-secret`,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
  scope,
});
const provider = new Provider(issuer, {
  clients: [client('agent-1', SCOPE), client('reader', SCOPE), client('narrow', 'mcp:read')],
  scopes: ['mcp:tools', 'mcp:read'],
  jwks: { keys: [privateJwk] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      async getResourceServerInfo(ctx, indicator) {
        if (indicator !== resource) throw new errors.InvalidTarget();
        return {
          scope: SCOPE,
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 300,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  cookies: { keys: ['airlock-test-cookie-key'] },
});
provider.on('server_error', (ctx, err) => console.error('oidc-provider error:', err));

/// Tokens signed here, with the provider's own key unless said otherwise.
async function mint() {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: issuer, aud: resource, sub: 'agent-1', client_id: 'agent-1', scope: SCOPE,
    iat: now, exp: now + 300, jti: `jti-${Math.random()}`,
  };
  const sign = (c, key = signing.privateKey, header = { alg: 'RS256', typ: 'at+jwt', kid }) =>
    new jose.SignJWT(c).setProtectedHeader(header).sign(key);
  const valid = await sign(claims);
  const [h, , s] = valid.split('.');
  const altered = jose.base64url.encode(JSON.stringify({ ...claims, sub: 'admin' }));
  const { sub, ...noSub } = claims;
  return {
    valid,
    expired: await sign({ ...claims, iat: now - 7200, exp: now - 3600 }),
    not_yet_valid: await sign({ ...claims, nbf: now + 3600 }),
    wrong_issuer: await sign({ ...claims, iss: 'http://127.0.0.1:1/elsewhere' }),
    wrong_audience: await sign({ ...claims, aud: 'http://127.0.0.1:1/other/mcp' }),
    unsigned: new jose.UnsecuredJWT(claims).encode(),
    tampered: `${h}.${altered}.${s}`,
    wrong_key: await sign(claims, foreign.privateKey),
    unknown_key: await sign(claims, foreign.privateKey, { alg: 'RS256', typ: 'at+jwt', kid: 'other-key' }),
    no_actor: await sign(noSub),
    shared_secret: await sign(claims, new TextEncoder().encode('a-shared-secret-of-32-bytes-long'), { alg: 'HS256', typ: 'at+jwt' }),
  };
}

const tokens = await mint();
// Node closes an idle kept-alive connection after 5 s, httpx (the Python agent) reuses one for
// 5 s: a request sent on one as Node closes it fails ("Server disconnected without sending a
// response"). The provider keeps them longer than any client here does.
const server = provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`ready ${JSON.stringify({ issuer, tokens })}`);
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
