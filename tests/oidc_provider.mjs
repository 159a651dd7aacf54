// A real OpenID Provider for the single sign-on tests: the OpenID Certified `oidc-provider`
// package on loopback, with one registered client and test accounts. Configured by one JSON
// argument: {port, issuer, client_id, client_secret, redirect_uri, keys, accounts}.
//
// POST /__test/mode {"mode": ..., "disable": "login"} changes what the next token responses
// carry, so the tests can check that the client refuses them: "tamper" (payload changed after
// signing), "aud" (re-signed for another audience), "expired" (re-signed, expired), "" (as
// issued). "disable" makes an account unknown, so its refresh tokens are refused; "set"
// replaces accounts' claims (a changed e-mail address).
import { createServer } from "node:http";
import Provider from "oidc-provider";
import { CompactSign, importJWK } from "jose";

const config = JSON.parse(process.argv[2]);
const accounts = config.accounts;
const disabled = new Set();
let mode = "";

const provider = new Provider(config.issuer, {
  clients: [{
    client_id: config.client_id,
    client_secret: config.client_secret,
    redirect_uris: [config.redirect_uri],
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  jwks: { keys: config.keys },
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
  scopes: ["openid", "offline_access", "email", "profile"],
  async findAccount(_ctx, id) {
    if (!(id in accounts) || disabled.has(id)) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...accounts[id] }; } };
  },
  // Refresh tokens for this client whatever the scope, so the workers can ask about a login.
  async issueRefreshToken(_ctx, client) { return client.grantTypeAllowed("refresh_token"); },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
});

const signingKey = config.keys[0];

async function resign(idToken, change) {
  const [, payload] = idToken.split(".");
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
  change(claims);
  const key = await importJWK(signingKey, "RS256");
  return new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg: "RS256", kid: signingKey.kid })
    .sign(key);
}

async function rewrite(idToken) {
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case "tamper": {
      const [header, payload, signature] = idToken.split(".");
      const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
      claims.sub = "someone-else";
      return [header, Buffer.from(JSON.stringify(claims)).toString("base64url"), signature].join(".");
    }
    case "aud":
      return resign(idToken, (c) => { c.aud = "another-client"; });
    case "expired":
      return resign(idToken, (c) => { c.iat = now - 7200; c.exp = now - 3600; });
    default:
      return idToken;
  }
}

provider.use(async (ctx, next) => {
  if (ctx.path === "/__test/mode" && ctx.method === "POST") {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    const body = JSON.parse(Buffer.concat(chunks).toString() || "{}");
    if ("mode" in body) mode = body.mode;
    if (body.disable) disabled.add(body.disable);
    if (body.set) Object.assign(accounts, body.set);
    ctx.body = { mode, disabled: [...disabled] };
    return;
  }
  await next();
  if (ctx.path === "/token" && ctx.body && ctx.body.id_token) {
    ctx.body = { ...ctx.body, id_token: await rewrite(ctx.body.id_token) };
  }
});

const server = createServer(provider.callback());
server.listen(config.port, "127.0.0.1", () => {
  process.stdout.write("ready\n");
});
