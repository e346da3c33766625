// Test OpenID Connect provider for the mrmat-api test suite.
//
// `node server.mjs` starts the certified `oidc-provider` package on 127.0.0.1
// (port IDP_PORT, default 0 = random), prints exactly one JSON line on stdout:
//   {"issuer":"http://127.0.0.1:PORT","port":PORT}
// and nothing else there. Everything else (library notices, logs) goes to stderr.
// It exits when its stdin reaches end-of-file (the parent test died or closed the
// pipe) and on SIGTERM/SIGINT. See README.md for clients, users and quirks.

// --- 1. stdout belongs to the one JSON line: route console output to stderr
// before the library is loaded (it prints notices through console.info/warn).
import { format } from 'node:util';

for (const level of ['log', 'info', 'warn', 'debug']) {
  console[level] = (...args) => { process.stderr.write(`${format(...args)}\n`); };
}

// Test-only: how the harness proves that a provider which never gets ready is
// killed, started again and reported with its stderr (see README.md). It blocks
// the main thread, as the old key-generation deadlock did, so JavaScript signal
// handlers never run and only SIGKILL ends it; it does so before the library
// loads, so it blocks within milliseconds of the start.
if (process.env.IDP_TEST_HANG_BEFORE_READY) {
  process.stderr.write('idp: IDP_TEST_HANG_BEFORE_READY is set: blocking before the ready line\n');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
}

const http = await import('node:http');
const crypto = await import('node:crypto');
const { readFile } = await import('node:fs/promises');
const querystring = await import('node:querystring');
const { default: Provider, errors } = await import('oidc-provider');

// --- 2. settings from the environment ---------------------------------------
function intFromEnv(name, fallback, { min = 0 } = {}) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    process.stderr.write(`idp: ${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return value;
}

const PORT = intFromEnv('IDP_PORT', 0);
const ACCESS_TOKEN_TTL = intFromEnv('IDP_ACCESS_TOKEN_TTL', 3600, { min: 1 });
const SHORT_ACCESS_TOKEN_TTL = 2;
const REFRESH_TOKEN_TTL = intFromEnv('IDP_REFRESH_TOKEN_TTL', 14 * 24 * 3600, { min: 1 });
const DEVICE_CODE_TTL = intFromEnv('IDP_DEVICE_CODE_TTL', 600, { min: 1 });
const DEVICE_INTERVAL = intFromEnv('IDP_DEVICE_INTERVAL', 1, { min: 0 });
// Fault injection: pad these answers with this many bytes (0 = off), to test that the
// server refuses oversized answers instead of reading them whole.
const PAD_INTROSPECTION = intFromEnv('IDP_PAD_INTROSPECTION', 0);
const PAD_DISCOVERY = intFromEnv('IDP_PAD_DISCOVERY', 0);
// Test-only refusals, to reproduce other providers' answers (see README.md).
const REFUSE_REVOCATION = new Set((process.env.IDP_REFUSE_REVOCATION ?? '').split(',').filter(Boolean));
const REFUSE_REFRESH = process.env.IDP_REFUSE_REFRESH ?? '';
if (!['', 'empty', 'hostile'].includes(REFUSE_REFRESH)) {
  process.stderr.write(`idp: IDP_REFUSE_REFRESH must be "empty" or "hostile", got ${JSON.stringify(REFUSE_REFRESH)}\n`);
  process.exit(2);
}
// JWT access tokens (RFC 9068) for a requested resource (RFC 8707), off by default: then
// every access token is opaque, as before. IDP_DEFAULT_RESOURCE turns them on too and is
// the resource of requests that name none.
const DEFAULT_RESOURCE = process.env.IDP_DEFAULT_RESOURCE || undefined;
const JWT_ACCESS_TOKENS = Boolean(process.env.IDP_JWT_ACCESS_TOKENS) || DEFAULT_RESOURCE !== undefined;
if (DEFAULT_RESOURCE !== undefined && !URL.canParse(DEFAULT_RESOURCE)) {
  process.stderr.write(`idp: IDP_DEFAULT_RESOURCE must be an absolute URL, got ${JSON.stringify(DEFAULT_RESOURCE)}\n`);
  process.exit(2);
}
// DPoP (RFC 9449): always on, as in the library, for the clients that ask (a token request
// with a `DPoP` proof gets a token bound to the proof's key); requests without a proof get
// the plain bearer tokens they always got. IDP_DPOP_NONCE=1 makes every proof carry a
// nonce of the provider's (RFC 9449 section 8): a proof without one is answered 400
// `use_dpop_nonce` with a `DPoP-Nonce` header, as providers that want nonces do.
const DPOP_NONCE = Boolean(process.env.IDP_DPOP_NONCE);
const SIGNING_ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'];
const SIGNING_ALG = process.env.IDP_SIGNING_ALG || 'RS256';
if (!SIGNING_ALGS.includes(SIGNING_ALG)) {
  process.stderr.write(`idp: IDP_SIGNING_ALG must be one of ${SIGNING_ALGS.join(', ')}, got ${JSON.stringify(SIGNING_ALG)}\n`);
  process.exit(2);
}

// --- 3. lifecycle: exit with the parent ---------------------------------------
function shutdown() { process.exit(0); }
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.on('SIGHUP', shutdown);
process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();

// --- 4. users, scopes and clients --------------------------------------------
const USERS = new Map([
  ['alice', { password: 'alice-password', name: 'Alice Example', email: 'alice@example.com' }],
  ['bob', { password: 'bob-password', name: 'Bob Example', email: 'bob@example.com' }],
  // A user whose `sub` equals a client id: the server must keep them apart.
  ['mrmat-api-test-rw2', { password: 'mrmat-api-test-rw2-password', name: 'Namesake Example', email: 'namesake@example.com' }],
]);

// The API's scopes come from the scope list in Rust (crates/mrmat-api-types/src/scope.rs),
// which the test kit passes in: a scope added there exists here too. READ is what the
// read-only test client gets; API_SCOPES (READ and WRITE) what the others may have.
function scopesFromEnv(name) {
  const raw = process.env[name];
  if (raw === undefined) {
    process.stderr.write(`idp: ${name} must name the API's scopes (space-separated); the test kit sets it\n`);
    process.exit(2);
  }
  return raw.split(' ').filter(Boolean);
}
const READ_SCOPES = scopesFromEnv('IDP_READ_SCOPES');
const API_SCOPE_LIST = [...READ_SCOPES, ...scopesFromEnv('IDP_WRITE_SCOPES')];
const READ = READ_SCOPES.join(' ');
const API_SCOPES = API_SCOPE_LIST.join(' ');
const SCOPES = ['openid', 'offline_access', 'profile', 'email', ...API_SCOPE_LIST];
const CLI_SCOPE = `openid profile email offline_access ${API_SCOPES}`;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

function ccClient(clientId, scope) {
  return {
    client_id: clientId,
    client_secret: `${clientId}-secret`,
    client_name: clientId,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope,
  };
}

function cliClient(clientId) {
  return {
    client_id: clientId,
    client_name: clientId,
    token_endpoint_auth_method: 'none',
    grant_types: [DEVICE_GRANT, 'refresh_token'],
    response_types: [],
    redirect_uris: [],
    scope: CLI_SCOPE,
  };
}

// The scope a client-credentials token gets when the request names none
// (like Keycloak's default client scopes). An explicit `scope` wins.
const CC_DEFAULT_SCOPE = new Map([
  ['mrmat-api-test-rw', API_SCOPES],
  ['mrmat-api-test-rw2', API_SCOPES],
  ['mrmat-api-test-ro', READ],
]);

const CLIENTS = [
  // The resource server (the API) introspects and revokes with these.
  { ...ccClient('mrmat-api', 'openid'), client_secret: 'mrmat-api-secret' },
  cliClient('mrmat-api-cli'),
  cliClient('mrmat-api-cli-short'),
  ccClient('mrmat-api-test-rw', API_SCOPES),
  ccClient('mrmat-api-test-rw2', API_SCOPES),
  ccClient('mrmat-api-test-ro', READ),
  // `openid` only: asking it for a resource scope is invalid_scope.
  ccClient('mrmat-api-test-none', 'openid'),
];
const RESOURCE_SERVER_CLIENT = 'mrmat-api';

// --- 5. storage: a plain Map with per-entry expiry ---------------------------
// The library's own memory adapter is an LRU of ~1000 entries that forgets live
// tokens under load. This one only forgets entries after they expire (plus a
// grace period so the library can still tell "expired" from "unknown").
const GRACE_MS = 60_000;
const store = new Map(); // key -> { payload, expiresAt }
const grantIndex = new Map(); // grantId -> Set(key)
const userCodeIndex = new Map(); // userCode -> id (DeviceCode)
const sessionUidIndex = new Map(); // uid -> id (Session)
const GRANTABLE = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode',
]);

function liveEntry(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt <= Date.now()) {
    removeEntry(key);
    return undefined;
  }
  return entry;
}

function removeEntry(key) {
  const entry = store.get(key);
  if (!entry) return;
  store.delete(key);
  const { payload } = entry;
  const id = key.slice(key.indexOf(':') + 1);
  if (payload.grantId) {
    const members = grantIndex.get(payload.grantId);
    if (members) {
      members.delete(key);
      if (members.size === 0) grantIndex.delete(payload.grantId);
    }
  }
  if (payload.userCode && userCodeIndex.get(payload.userCode) === id) userCodeIndex.delete(payload.userCode);
  if (payload.uid && key.startsWith('Session:') && sessionUidIndex.get(payload.uid) === id) {
    sessionUidIndex.delete(payload.uid);
  }
}

setInterval(() => {
  const now = Date.now();
  for (const [key, entry] of store) {
    if (entry.expiresAt <= now) removeEntry(key);
  }
}, 30_000).unref();

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    removeEntry(key);
    const expiresAt = typeof expiresIn === 'number' && Number.isFinite(expiresIn)
      ? Date.now() + expiresIn * 1000 + GRACE_MS
      : Infinity;
    store.set(key, { payload, expiresAt });
    if (GRANTABLE.has(this.model) && payload.grantId) {
      if (!grantIndex.has(payload.grantId)) grantIndex.set(payload.grantId, new Set());
      grantIndex.get(payload.grantId).add(key);
    }
    if (payload.userCode) userCodeIndex.set(payload.userCode, id);
    if (this.model === 'Session' && payload.uid) sessionUidIndex.set(payload.uid, id);
  }

  async find(id) {
    return liveEntry(this.key(id))?.payload;
  }

  async findByUserCode(userCode) {
    const id = userCodeIndex.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUid(uid) {
    const id = sessionUidIndex.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const entry = liveEntry(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    removeEntry(this.key(id));
  }

  // Like the library's adapter: every artefact of the grant goes, whatever its model.
  async revokeByGrantId(grantId) {
    const members = grantIndex.get(grantId);
    if (!members) return;
    for (const key of [...members]) removeEntry(key);
    grantIndex.delete(grantId);
  }
}

// --- 6. small HTML helpers ------------------------------------------------------
function esc(value) {
  return String(value ?? '')
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

function page(title, body, { pageName = '', status = '' } = {}) {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:sans-serif;max-width:28em;margin:2em auto}p.error{color:#b00}</style></head>
<body data-page="${esc(pageName)}" data-status="${esc(status)}">
<h1>${esc(title)}</h1>
${body}
</body>
</html>`;
}

// --- 7. provider configuration ------------------------------------------------
const COOKIE_KEY = crypto.randomBytes(32).toString('base64url');
const FORM_KEY = crypto.randomBytes(32);
const formToken = (uid) => crypto.createHmac('sha256', FORM_KEY).update(uid).digest('base64url');

// A fixed, test-only RSA key (see the file's own note), never one generated here:
// generating (and exporting) a key at start cost up to 2 s per start and could
// deadlock Node 20's main thread inside a garbage collection (KeyGenJob's
// destructor waits on a lock the JWK export holds), so the provider never
// printed its ready line and the test hung.
const { key: signingKey } = JSON.parse(
  await readFile(new URL('./test-signing-key.json', import.meta.url), 'utf8'),
);

// --- 7a. access-token signing keys (test-only) ----------------------------------
// The fixed key signs RS256 access tokens; another IDP_SIGNING_ALG gets a key made here,
// as does every rotation (POST /__rotate). None is generated by this process's own key
// generation jobs (the deadlock above, and the generateKeyPairSync one in README.md): EC
// and Ed25519 keys are built from random bytes; an RSA key is made by a child Node
// process, killed and tried again if it hangs.
const b64u = (buffer) => Buffer.from(buffer).toString('base64url');
const { execFile } = await import('node:child_process');

const RSA_KEYGEN = "const c=require('node:crypto');"
  + "const {privateKey}=c.generateKeyPairSync('rsa',{modulusLength:2048});"
  + "process.stdout.write(JSON.stringify(privateKey.export({format:'jwk'})))";

async function rsaJwk() {
  const failures = [];
  for (let attempt = 1; attempt <= 3; attempt += 1) {
    try {
      // eslint-disable-next-line no-await-in-loop
      const stdout = await new Promise((resolve, reject) => {
        execFile(process.execPath, ['-e', RSA_KEYGEN], { timeout: 10_000, killSignal: 'SIGKILL' }, (err, out) => {
          if (err) reject(err); else resolve(out);
        });
      });
      return JSON.parse(stdout);
    } catch (err) {
      failures.push(err.message);
    }
  }
  throw new Error(`no RSA key in 3 attempts: ${failures.join('; ')}`);
}

let keyCounter = 0;
async function makeKey(alg) {
  keyCounter += 1;
  const kid = `idp-test-${alg.toLowerCase()}-${keyCounter}-${crypto.randomBytes(4).toString('hex')}`;
  let jwk;
  switch (alg) {
    case 'RS256':
    case 'PS256': {
      const {
        kty, n, e, d, p, q, dp, dq, qi,
      } = await rsaJwk();
      jwk = {
        kty, n, e, d, p, q, dp, dq, qi,
      };
      break;
    }
    case 'ES256': {
      const ecdh = crypto.createECDH('prime256v1');
      ecdh.generateKeys();
      const point = ecdh.getPublicKey(); // 0x04 || x || y
      const d = Buffer.alloc(32);
      const raw = ecdh.getPrivateKey();
      raw.copy(d, 32 - raw.length);
      jwk = {
        kty: 'EC', crv: 'P-256', x: b64u(point.subarray(1, 33)), y: b64u(point.subarray(33, 65)), d: b64u(d),
      };
      break;
    }
    case 'EdDSA': {
      const seed = crypto.randomBytes(32);
      const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
      const privateKey = crypto.createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
      const spki = crypto.createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
      jwk = {
        kty: 'OKP', crv: 'Ed25519', x: b64u(spki.subarray(spki.length - 32)), d: b64u(seed),
      };
      break;
    }
    default:
      throw new Error(`no key for ${alg}`);
  }
  return { kid, alg, use: 'sig', ...jwk };
}

function publicJwk(jwk) {
  const {
    d, p, q, dp, dq, qi, ...rest
  } = jwk;
  return rest;
}

const accessTokenKeys = {
  // Signs new access tokens (and what /__mint signs).
  current: SIGNING_ALG === 'RS256' ? signingKey : await makeKey(SIGNING_ALG),
  // Keys made by /__rotate: published beside the library's own.
  rotated: [],
};
const startKeyKid = accessTokenKeys.current.kid;

// A JWS over `header` and `payload` with `key` (a private JWK), or HS256 with `secret`, or
// with no signature at all.
function signJws(header, payload, { key, secret, unsigned } = {}) {
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
  if (unsigned) return `${input}.`;
  if (secret !== undefined) {
    return `${input}.${b64u(crypto.createHmac('sha256', secret).update(input).digest())}`;
  }
  const privateKey = crypto.createPrivateKey({ key, format: 'jwk' });
  let signature;
  switch (key.alg) {
    case 'RS256': signature = crypto.sign('sha256', Buffer.from(input), privateKey); break;
    case 'PS256':
      signature = crypto.sign('sha256', Buffer.from(input), {
        key: privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32,
      });
      break;
    case 'ES256': signature = crypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }); break;
    case 'EdDSA': signature = crypto.sign(null, Buffer.from(input), privateKey); break;
    default: throw new Error(`cannot sign with ${key.alg}`);
  }
  return `${input}.${b64u(signature)}`;
}

function decodeJws(token) {
  const [header, payload] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(header, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')),
  };
}

function tokenTtl(client) {
  return client?.clientId === 'mrmat-api-cli-short' ? SHORT_ACCESS_TOKEN_TTL : ACCESS_TOKEN_TTL;
}

const configuration = {
  adapter: MapAdapter,
  clients: CLIENTS,
  // The fixed key first: it signs ID tokens (RS256, the clients' default).
  jwks: { keys: accessTokenKeys.current === signingKey ? [signingKey] : [signingKey, accessTokenKeys.current] },
  cookies: { keys: [COOKIE_KEY] },
  scopes: SCOPES,
  responseTypes: ['code'],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
  },
  async findAccount(ctx, sub) {
    const user = USERS.get(sub);
    if (!user) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, preferred_username: sub, name: user.name, email: user.email };
      },
    };
  },
  // Like Keycloak: user access tokens carry the user name; client-credentials
  // tokens (no sub) carry nothing extra. Introspection spreads these in.
  async extraTokenClaims(ctx, token) {
    if (token.kind === 'AccessToken' && token.accountId) {
      return { preferred_username: token.accountId, username: token.accountId };
    }
    return undefined;
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // Confidential clients may introspect any token; public ones their own.
      async allowedPolicy(ctx, client, token) {
        return client.clientAuthMethod !== 'none' || token.clientId === client.clientId;
      },
    },
    revocation: {
      enabled: true,
      // The resource server may revoke any token; others only their own.
      async allowedPolicy(ctx, client, token) {
        if (token.clientId === client.clientId || client.clientId === RESOURCE_SERVER_CLIENT) return true;
        if (client.clientAuthMethod === 'none') return false;
        throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
      },
    },
    // Off (the default): opaque tokens only, never `aud`/JWT access tokens. On
    // (IDP_JWT_ACCESS_TOKENS, IDP_DEFAULT_RESOURCE): a token asked for a resource is a JWT
    // (RFC 9068) whose `aud` is that resource, signed with the IDP_SIGNING_ALG key; such a
    // token is not stored, so it cannot be introspected.
    resourceIndicators: JWT_ACCESS_TOKENS ? {
      enabled: true,
      defaultResource(ctx, client, oneOf) { return oneOf ?? DEFAULT_RESOURCE; },
      useGrantedResource() { return true; },
      getResourceServerInfo(ctx, resourceIndicator, client) {
        return {
          scope: API_SCOPES,
          audience: resourceIndicator,
          accessTokenTTL: tokenTtl(client),
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: SIGNING_ALG, kid: startKeyKid } },
        };
      },
    } : { enabled: false },
    // A token request with a `DPoP` header is checked (section 4.3) and its tokens are
    // bound to the proof's key: introspection answers `token_type: DPoP` and
    // `cnf.jkt`, a JWT access token carries `cnf.jkt`, and a public client's refresh
    // token needs a proof by the same key. Proofs by ES256 and EdDSA keys are accepted.
    dPoP: {
      enabled: true,
      nonceSecret: DPOP_NONCE ? crypto.randomBytes(32) : undefined,
      requireNonce() { return DPOP_NONCE; },
    },
    deviceFlow: {
      enabled: true,
      async userCodeInputSource(ctx, form, out, err) {
        let status = 'input';
        let message = 'Enter the code displayed on your device.';
        if (err?.name === 'AbortedError') {
          status = 'aborted';
          message = 'The sign-in request was denied.';
        } else if (err?.name === 'NotFoundError') {
          status = 'not-found';
          message = 'The code you entered is unknown. Try again.';
        } else if (err?.name === 'ExpiredError') {
          status = 'expired';
          message = 'The code you entered has expired.';
        } else if (err?.name === 'AlreadyUsedError') {
          status = 'already-used';
          message = 'The code you entered has already been used.';
        } else if (err?.name === 'NoCodeError') {
          status = 'no-code';
          message = 'Enter a code.';
        } else if (err) {
          status = 'error';
          message = `There was an error processing your request: ${out?.error ?? err.message}`;
        }
        ctx.type = 'html';
        ctx.body = page('Device sign-in', `<p id="message" class="${err ? 'error' : ''}">${esc(message)}</p>
${form}
<button type="submit" form="op.deviceInputForm">Continue</button>`, { pageName: 'device-input', status });
      },
      async userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
        ctx.type = 'html';
        ctx.body = page('Confirm device', `<p>Client <strong>${esc(client.clientName || client.clientId)}</strong> asks to sign in.
Check that your device shows the code <code id="user-code">${esc(userCode)}</code>.</p>
${form}
<button type="submit" form="op.deviceConfirmForm">Continue</button>
<button type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Abort</button>`, { pageName: 'device-confirm' });
      },
      async successSource(ctx) {
        ctx.type = 'html';
        ctx.body = page('Sign-in complete', `<p id="message">Your device is signed in${ctx.oidc.client ? ` to ${esc(ctx.oidc.client.clientName || ctx.oidc.client.clientId)}` : ''}. You can close this page.</p>`, { pageName: 'device-success', status: 'success' });
      },
    },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.type = 'html';
        ctx.body = page('Sign out', `${form}
<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>
<button type="submit" form="op.logoutForm">Stay signed in</button>`, { pageName: 'logout' });
      },
      async postLogoutSuccessSource(ctx) {
        ctx.type = 'html';
        ctx.body = page('Signed out', '<p>You are signed out.</p>', { pageName: 'logout-success', status: 'success' });
      },
    },
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', Object.entries(out)
      .map(([key, value]) => `<p class="error"><strong>${esc(key)}</strong>: <span id="${esc(key)}">${esc(value)}</span></p>`)
      .join('\n'), { pageName: 'error', status: 'error' });
  },
  // Revoking any token of a login (by anyone allowed to) ends the whole login:
  // the grant goes, so every token of it introspects inactive.
  revokeGrantPolicy() { return true; },
  ttl: {
    AccessToken(ctx, token, client) { return tokenTtl(client); },
    ClientCredentials() { return ACCESS_TOKEN_TTL; },
    RefreshToken() { return REFRESH_TOKEN_TTL; },
    DeviceCode() { return DEVICE_CODE_TTL; },
    IdToken() { return 3600; },
    Interaction() { return 3600; },
    Session() { return 24 * 3600; },
    Grant() { return REFRESH_TOKEN_TTL; },
  },
};

// --- 8. stats -------------------------------------------------------------------
const stats = {
  introspections: 0, revocations: 0, device_authorizations: 0, device_requests: [], token_requests: [],
  jwks_requests: 0, dpop_revocations: 0, trace_contexts: [],
};
function resetStats() {
  stats.introspections = 0;
  stats.dpop_revocations = 0;
  stats.jwks_requests = 0;
  stats.revocations = 0;
  stats.device_authorizations = 0;
  stats.device_requests = [];
  stats.token_requests = [];
  stats.trace_contexts = [];
}

// The resource indicator (RFC 8707 `resource`, or Auth0's `audience`) a request sent, as
// sent: a string, an array when repeated, null when absent. Read from the form itself,
// because with resource indicators off the library leaves `resource` out of its params.
function targetParams(ctx) {
  const form = ctx.oidc?.body ?? ctx.request.body ?? {};
  return { resource: form.resource ?? null, audience: form.audience ?? null };
}

function basicClientId(ctx) {
  const header = ctx.get('authorization');
  const match = /^basic\s+(\S+)$/i.exec(header || '');
  if (!match) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 1) return null;
  try {
    return decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, '%20'));
  } catch {
    return decoded.slice(0, colon);
  }
}

async function readForm(ctx) {
  const chunks = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += chunk.length;
    if (size > 64 * 1024) ctx.throw(413);
    chunks.push(chunk);
  }
  return querystring.parse(Buffer.concat(chunks).toString('utf8'));
}

// --- 9. start: listen first (the issuer needs the port), then build the provider
let handler = (req, res) => { res.statusCode = 503; res.end('starting'); };
const server = http.createServer((req, res) => handler(req, res));
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.on('error', (err) => {
  process.stderr.write(`idp: server error: ${err.message}\n`);
  process.exit(1);
});

await new Promise((resolve) => server.listen(PORT, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, configuration);
provider.proxy = false;

provider.on('server_error', (ctx, err) => {
  process.stderr.write(`idp: server_error on ${ctx.method} ${ctx.path}: ${err?.stack ?? err}\n`);
});

// Client-credentials requests without `scope` get the client's default scope.
{
  const { ClientCredentials } = provider;
  const save = ClientCredentials.prototype.save;
  ClientCredentials.prototype.save = async function saveWithDefaultScope(...args) {
    if (!this.scope && !this.jti && Provider.ctx?.oidc?.params?.scope === undefined) {
      const scope = CC_DEFAULT_SCOPE.get(this.clientId);
      if (scope) this.scope = scope;
    }
    return save.apply(this, args);
  };
}

const routes = {
  token: provider.pathFor('token'),
  introspection: provider.pathFor('introspection'),
  revocation: provider.pathFor('revocation'),
  deviceAuthorization: provider.pathFor('device_authorization'),
  jwks: provider.pathFor('jwks'),
};

// Test-only key hooks (see README.md): every response from a key the provider signs
// access tokens with. Never part of a real provider.
//   POST /__rotate  a new key of IDP_SIGNING_ALG: published in the JWKS from now on and
//                   signing new access tokens; the old keys stay published.
//   POST /__mint    {"header":{..},"payload":{..}} signed with the current key (header
//                   `alg` and `kid` default to the key's; `"kid": null` leaves it out),
//                   or with "unsigned": true no signature, or with "hmac_secret": "..."
//                   HS256 with that secret, or with "hmac_secret_from": "pem" | "jwk"
//                   HS256 with the current public key (PEM, or its JWK as JSON) as the
//                   secret: tokens the provider would never issue.
async function readJson(ctx) {
  const chunks = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += chunk.length;
    if (size > 4 * 1024 * 1024) ctx.throw(413);
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
}

function mint(request) {
  const key = accessTokenKeys.current;
  const hmac = request.hmac_secret !== undefined || request.hmac_secret_from !== undefined;
  const alg = request.unsigned ? 'none' : hmac ? 'HS256' : key.alg;
  const header = { alg, kid: key.kid, ...(request.header ?? {}) };
  for (const [name, value] of Object.entries(header)) {
    if (value === null) delete header[name];
  }
  const payload = request.payload ?? {};
  if (request.unsigned) return signJws(header, payload, { unsigned: true });
  let secret = request.hmac_secret;
  if (request.hmac_secret_from === 'pem') {
    secret = crypto.createPublicKey({ key: publicJwk(key), format: 'jwk' }).export({ type: 'spki', format: 'pem' });
  } else if (request.hmac_secret_from === 'jwk') {
    secret = JSON.stringify(publicJwk(key));
  }
  return signJws(header, payload, secret === undefined ? { key } : { secret });
}

// A JWT access token the library signed with the start key, signed again with the current
// key once a rotation happened (the library's key store is fixed when it starts).
function resignAccessToken(body) {
  if (accessTokenKeys.current.kid === startKeyKid || !body || typeof body !== 'object') return body;
  const token = body.access_token;
  if (typeof token !== 'string' || token.split('.').length !== 3) return body;
  const { header, payload } = decodeJws(token);
  if (header.kid !== startKeyKid) return body;
  const key = accessTokenKeys.current;
  return { ...body, access_token: signJws({ ...header, alg: key.alg, kid: key.kid }, payload, { key }) };
}

// Stats: test-only routes under /__stats (no provider route starts with "__").
provider.use(async (ctx, next) => {
  if (ctx.path === '/__stats' || ctx.path === '/__stats/') {
    if (ctx.method !== 'GET') { ctx.status = 405; ctx.set('Allow', 'GET'); return; }
    ctx.set('Cache-Control', 'no-store');
    ctx.body = stats;
    return;
  }
  // W3C trace context a caller sent (a traced server passes its trace on).
  if (ctx.get('traceparent') && !ctx.path.startsWith('/__')) {
    stats.trace_contexts.push({
      method: ctx.method, path: ctx.path, traceparent: ctx.get('traceparent'),
      tracestate: ctx.get('tracestate') || null,
    });
  }
  if (ctx.path === '/__stats/reset') {
    if (ctx.method !== 'POST') { ctx.status = 405; ctx.set('Allow', 'POST'); return; }
    resetStats();
    ctx.body = stats;
    return;
  }
  if (ctx.path === '/__rotate') {
    if (ctx.method !== 'POST') { ctx.status = 405; ctx.set('Allow', 'POST'); return; }
    const key = await makeKey(SIGNING_ALG);
    accessTokenKeys.rotated.push(key);
    accessTokenKeys.current = key;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { kid: key.kid, alg: key.alg };
    return;
  }
  if (ctx.path === '/__mint') {
    if (ctx.method !== 'POST') { ctx.status = 405; ctx.set('Allow', 'POST'); return; }
    let request;
    try {
      request = await readJson(ctx);
    } catch (err) {
      ctx.status = 400;
      ctx.body = { error: `not JSON: ${err.message}` };
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { token: mint(request) };
    return;
  }
  if (ctx.method === 'GET' && ctx.path === routes.jwks) {
    stats.jwks_requests += 1;
    await next();
    if (ctx.status === 200 && Array.isArray(ctx.body?.keys)) {
      ctx.body = { keys: [...ctx.body.keys, ...accessTokenKeys.rotated.map(publicJwk)] };
    }
    return;
  }

  if (ctx.method !== 'POST') { await next(); return; }

  switch (ctx.path) {
    case routes.introspection: stats.introspections += 1; break;
    case routes.revocation:
      stats.revocations += 1;
      if (ctx.get('dpop')) stats.dpop_revocations += 1;
      break;
    case routes.deviceAuthorization: {
      stats.device_authorizations += 1;
      try {
        await next();
      } finally {
        stats.device_requests.push({
          client_id: ctx.oidc?.client?.clientId ?? ctx.oidc?.body?.client_id ?? basicClientId(ctx),
          ...targetParams(ctx),
          status: ctx.status,
        });
      }
      return;
    }
    case routes.token: {
      const at = Date.now();
      try {
        await next();
        if (ctx.status === 200) ctx.body = resignAccessToken(ctx.body);
      } finally {
        let grantType = null;
        let clientId = null;
        try {
          // A request refused by the test-only middleware below never reaches the
          // library; its form is in ctx.request.body.
          grantType = ctx.oidc?.params?.grant_type ?? ctx.request.body?.grant_type ?? null;
          clientId = ctx.oidc?.client?.clientId ?? ctx.oidc?.params?.client_id
            ?? ctx.request.body?.client_id ?? null;
        } catch { /* request rejected before its parameters were read */ }
        stats.token_requests.push({
          at_ms: at,
          grant_type: grantType,
          client_id: clientId ?? basicClientId(ctx),
          ...targetParams(ctx),
          status: ctx.status,
          // Whether the request carried a DPoP proof, and the error of a refused one.
          dpop: Boolean(ctx.get('dpop')),
          error: ctx.status >= 400 && typeof ctx.body === 'object' ? ctx.body?.error ?? null : null,
        });
      }
      return;
    }
    default: break;
  }
  await next();
});

// Test-only refusals, as other providers answer (IDP_REFUSE_REVOCATION,
// IDP_REFUSE_REFRESH). The form is read here and handed to the library as an
// already parsed body, which it accepts, so requests not refused go on as usual.
const HOSTILE_DESCRIPTION = '\u001b]8;;https://evil.example/\u0007Open https://idp.example/\u001b]8;;\u0007'
  + ' \u001b[2J\u001b[31mthe grant is gone\u001b[0m \u202eeulav';
provider.use(async (ctx, next) => {
  const watched = (ctx.path === routes.revocation && REFUSE_REVOCATION.size > 0)
    || (ctx.path === routes.token && REFUSE_REFRESH !== '');
  if (ctx.method !== 'POST' || !watched || !ctx.is('application/x-www-form-urlencoded')) {
    await next();
    return;
  }
  const form = await readForm(ctx);
  ctx.request.body = form;
  if (ctx.path === routes.revocation) {
    const clientId = form.client_id ?? basicClientId(ctx);
    if (REFUSE_REVOCATION.has(clientId)) {
      ctx.status = 401;
      ctx.body = '';
      return;
    }
  } else if (form.grant_type === 'refresh_token') {
    ctx.status = 400;
    ctx.set('Cache-Control', 'no-store');
    if (REFUSE_REFRESH === 'empty') {
      ctx.body = '';
    } else {
      ctx.body = { error: 'invalid_grant', error_description: HOSTILE_DESCRIPTION };
    }
    return;
  }
  await next();
});

// The device authorization response gets an `interval` (the library sends none).
provider.use(async (ctx, next) => {
  await next();
  if (
    ctx.method === 'POST' && ctx.path === routes.deviceAuthorization && ctx.status === 200
    && ctx.body && typeof ctx.body === 'object' && 'device_code' in ctx.body
  ) {
    ctx.body = { ...ctx.body, interval: DEVICE_INTERVAL };
  }
});

// Like Keycloak's Audience mapper: an active access token names the API in `aud`, except
// those of the no-scope test client, which are for another service, so the server's
// audience check (--oidc-audience) meets one of each. (The library sends `aud` only with
// resource indicators, which the tests do not use.)
provider.use(async (ctx, next) => {
  await next();
  if (
    ctx.path === routes.introspection && ctx.status === 200 && ctx.body?.active
    && ['Bearer', 'DPoP'].includes(ctx.body.token_type) && ctx.body.aud === undefined
  ) {
    const aud = ctx.body.client_id === 'mrmat-api-test-none' ? 'another-api' : RESOURCE_SERVER_CLIENT;
    ctx.body = { ...ctx.body, aud };
  }
});

// Fault injection (IDP_PAD_*): oversized introspection and discovery answers.
provider.use(async (ctx, next) => {
  await next();
  const pad = ctx.path === routes.introspection ? PAD_INTROSPECTION
    : ctx.path === '/.well-known/openid-configuration' ? PAD_DISCOVERY : 0;
  if (pad > 0 && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
    ctx.body = { ...ctx.body, x_padding: 'x'.repeat(pad) };
  }
});

// GET /device/<anything> (the device-flow resume route, which also catches a
// mistaken GET /device/auth) answers 500 in the library when the browser has no
// resume cookie. Answer 400 with the error page instead.
provider.use(async (ctx, next) => {
  if (
    ctx.method === 'GET' && ctx.path.startsWith(`${provider.pathFor('code_verification')}/`)
    && !/(?:^|;\s*)_interaction_resume=/.test(ctx.get('cookie'))
  ) {
    ctx.status = 400;
    ctx.set('Cache-Control', 'no-store');
    ctx.type = 'html';
    ctx.body = page('Error', '<p class="error" id="message">No device sign-in is in progress in this browser.</p>', { pageName: 'error', status: 'session-not-found' });
    return;
  }
  await next();
});

// Login and consent pages (devInteractions is off).
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?\/?$/.exec(ctx.path);
  if (!match) { await next(); return; }
  const [, uid, action] = match;
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'html';

  let interaction;
  try {
    interaction = await provider.interactionDetails(ctx.req, ctx.res);
    if (interaction.uid !== uid) throw new Error('interaction does not match the cookie');
  } catch (err) {
    ctx.status = 400;
    ctx.body = page('Error', `<p class="error" id="message">The sign-in session was not found or has expired (${esc(err.message)}).</p>`, { pageName: 'error', status: 'session-not-found' });
    return;
  }

  const { prompt, params } = interaction;
  const client = await provider.Client.find(params.client_id);
  const clientName = client?.clientName || params.client_id;

  const loginPage = (error) => page('Sign in', `${error ? `<p class="error" id="message">${esc(error)}</p>` : ''}
<p>Sign in to continue to <strong>${esc(clientName)}</strong>.</p>
<form id="login-form" method="post" action="/interaction/${esc(uid)}/login">
<input type="hidden" name="csrf" value="${esc(formToken(uid))}">
<p><label>Username <input type="text" name="username" autocomplete="username" autofocus></label></p>
<p><label>Password <input type="password" name="password" autocomplete="current-password"></label></p>
<p><button type="submit">Sign in</button></p>
</form>`, { pageName: 'login', status: error ? 'login-failed' : '' });

  const consentPage = () => {
    const scopes = [
      ...(prompt.details.missingOIDCScope || []),
      ...Object.values(prompt.details.missingResourceScopes || {}).flat(),
    ];
    return page('Authorize access', `<p><strong>${esc(clientName)}</strong> asks for access to your account (${esc(interaction.session?.accountId ?? '')}).</p>
<ul id="scopes">${scopes.map((s) => `<li>${esc(s)}</li>`).join('')}</ul>
<form id="consent-form" method="post" action="/interaction/${esc(uid)}/confirm">
<input type="hidden" name="csrf" value="${esc(formToken(uid))}">
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>`, { pageName: 'consent' });
  };

  const finish = async (result) => {
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.redirect(returnTo);
    ctx.status = 303;
    ctx.body = '';
  };

  if (!action) {
    if (ctx.method !== 'GET') { ctx.status = 405; ctx.set('Allow', 'GET'); ctx.body = ''; return; }
    ctx.body = prompt.name === 'login' ? loginPage() : consentPage();
    return;
  }

  if (ctx.method !== 'POST') { ctx.status = 405; ctx.set('Allow', 'POST'); ctx.body = ''; return; }
  const form = await readForm(ctx);
  if (form.csrf !== formToken(uid)) {
    ctx.status = 400;
    ctx.body = page('Error', '<p class="error" id="message">The form was not valid; start again.</p>', { pageName: 'error', status: 'bad-form' });
    return;
  }

  if (action === 'abort' || (action === 'confirm' && form.decision === 'deny')) {
    await finish({ error: 'access_denied', error_description: 'End-User denied the request' });
    return;
  }

  if (action === 'login') {
    if (prompt.name !== 'login') { ctx.status = 400; ctx.body = consentPage(); return; }
    const username = String(form.username ?? '');
    const user = USERS.get(username);
    const password = Buffer.from(String(form.password ?? ''));
    const expected = Buffer.from(user?.password ?? '');
    if (!user || password.length !== expected.length || !crypto.timingSafeEqual(password, expected)) {
      // The library marks a device code "in flight" once confirmed, so entering
      // it again (a fresh approve.mjs run after a wrong password) would say
      // "already used". Release it: the person may start over with the code.
      if (interaction.deviceCode) {
        const code = await provider.DeviceCode.find(interaction.deviceCode, { ignoreExpiration: true });
        if (code?.inFlight && !code.accountId && !code.error) {
          code.inFlight = undefined;
          await code.save();
        }
      }
      ctx.status = 401;
      ctx.body = loginPage('Invalid username or password');
      return;
    }
    await finish({ login: { accountId: username } });
    return;
  }

  // action === 'confirm', decision approve: grant everything that was asked.
  if (prompt.name !== 'consent') { ctx.status = 400; ctx.body = loginPage(); return; }
  const { details } = prompt;
  const grant = interaction.grantId
    ? await provider.Grant.find(interaction.grantId)
    : new provider.Grant({ accountId: interaction.session.accountId, clientId: params.client_id });
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(details.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await finish({ consent: interaction.grantId ? {} : { grantId } });
});

handler = provider.callback();

process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
