// A real OpenID Provider for the sign-in tests: the npm package `oidc-provider` (certified), with
// its development login and consent pages, one confidential client (Airlock) and two people
// whose email addresses are verified.
//
//   node oidc_provider.mjs PORT REDIRECT_URI CLIENT_SECRET
//
// Serves http://127.0.0.1:PORT (the issuer) and prints `ready ISSUER` once it listens. Log in as
// `ann` (ann@example.com) or `eve` (eve@example.com), any password. The package comes from
// $AIRLOCK_PEERS_DIR/node_modules (`.ci/install-peers` installs it).
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [port, redirectUri, clientSecret] = process.argv.slice(2);
if (!port || !redirectUri || !clientSecret) {
  console.error('usage: oidc_provider.mjs PORT REDIRECT_URI CLIENT_SECRET');
  process.exit(2);
}
const peers = process.env.AIRLOCK_PEERS_DIR || join(import.meta.dirname, '..', '..', '.peers');
const entry = join(peers, 'node_modules', 'oidc-provider', 'lib', 'index.js');
const { default: Provider } = await import(pathToFileURL(entry).href);

const people = {
  ann: { email: 'ann@example.com', email_verified: true },
  eve: { email: 'eve@example.com', email_verified: true },
};
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: 'airlock',
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, sub) {
    const person = people[sub];
    if (!person) return undefined;
    return { accountId: sub, async claims() { return { sub, ...person }; } };
  },
  cookies: { keys: ['airlock-test-cookie-key'] },
  jwks: undefined,
});
provider.on('server_error', (ctx, err) => console.error('oidc-provider error:', err));
// Node closes an idle kept-alive connection after 5 s, httpx (the Python agent) reuses one for
// 5 s: a request sent on one as Node closes it fails ("Server disconnected without sending a
// response"). The provider keeps them longer than any client here does.
const server = provider.listen(Number(port), '127.0.0.1', () => console.log(`ready ${issuer}`));
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
