#!/usr/bin/env node
// Scripts a person approving (or denying) a device login through the test
// provider's own HTTP pages, like a browser would: cookie jar, manual redirects,
// forms parsed from the HTML.
//
//   node approve.mjs --user-code CODE --verification-uri URL \
//                    --username alice --password alice-password [--deny]
//   node approve.mjs --verification-uri-complete URL --username alice --password alice-password
//
// Exit codes: 0 approved (or denied with --deny) and the provider showed its
// success/denial page; 3 login rejected; 4 user code unknown, expired or already
// used; 1 anything else (one line on stderr says what happened).
// stdout: "approved" or "denied", nothing else.

const EXIT_OK = 0;
const EXIT_FAIL = 1;
const EXIT_LOGIN = 3;
const EXIT_CODE = 4;

class Stop extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function parseArgs(argv) {
  const opts = { deny: false };
  const names = new Map([
    ['--user-code', 'userCode'],
    ['--verification-uri', 'verificationUri'],
    ['--verification-uri-complete', 'verificationUriComplete'],
    ['--username', 'username'],
    ['--password', 'password'],
    ['--timeout', 'timeout'],
  ]);
  for (let i = 0; i < argv.length; i += 1) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (arg === '--deny') { opts.deny = true; continue; }
    if (arg === '-h' || arg === '--help') {
      throw new Stop(EXIT_FAIL, 'usage: approve.mjs (--user-code CODE --verification-uri URL | --verification-uri-complete URL) --username USER --password PASS [--deny]');
    }
    const key = names.get(arg);
    if (!key) throw new Stop(EXIT_FAIL, `unknown argument ${arg}`);
    if (value === undefined) {
      i += 1;
      if (i >= argv.length) throw new Stop(EXIT_FAIL, `${arg} needs a value`);
      value = argv[i];
    }
    opts[key] = value;
  }
  if (!opts.verificationUriComplete && !(opts.verificationUri && opts.userCode)) {
    throw new Stop(EXIT_FAIL, 'need --verification-uri-complete, or --verification-uri and --user-code');
  }
  if (opts.username === undefined || opts.password === undefined) {
    throw new Stop(EXIT_FAIL, 'need --username and --password');
  }
  return opts;
}

// --- cookie jar (host-only, path-aware; enough for one provider) -----------
class CookieJar {
  constructor() { this.cookies = new Map(); } // `${host}|${path}|${name}` -> {host, path, name, value, expires}

  store(url, response) {
    const lines = typeof response.headers.getSetCookie === 'function'
      ? response.headers.getSetCookie()
      : (response.headers.get('set-cookie') ? [response.headers.get('set-cookie')] : []);
    for (const line of lines) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path;
      let expires = Infinity;
      for (const attr of attrs) {
        const [k, ...v] = attr.split('=');
        const key = k.trim().toLowerCase();
        const val = v.join('=').trim();
        if (key === 'path' && val.startsWith('/')) path = val;
        else if (key === 'max-age') expires = Date.now() + Number(val) * 1000;
        else if (key === 'expires' && expires === Infinity) {
          const t = Date.parse(val);
          if (!Number.isNaN(t)) expires = t;
        }
      }
      if (!path) {
        const p = url.pathname;
        path = p.lastIndexOf('/') > 0 ? p.slice(0, p.lastIndexOf('/')) : '/';
      }
      const key = `${url.host}|${path}|${name}`;
      if (expires <= Date.now()) this.cookies.delete(key);
      else this.cookies.set(key, { host: url.host, path, name, value, expires });
    }
  }

  header(url) {
    const now = Date.now();
    const matches = [];
    for (const [key, c] of this.cookies) {
      if (c.expires <= now) { this.cookies.delete(key); continue; }
      if (c.host !== url.host) continue;
      const p = url.pathname;
      const pathOk = p === c.path || (p.startsWith(c.path) && (c.path.endsWith('/') || p[c.path.length] === '/'));
      if (pathOk) matches.push(c);
    }
    matches.sort((a, b) => b.path.length - a.path.length);
    return matches.map((c) => `${c.name}=${c.value}`).join('; ');
  }
}

// --- tiny HTML form parsing --------------------------------------------------
function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (m, e) => {
    const l = e.toLowerCase();
    if (l === 'amp') return '&';
    if (l === 'lt') return '<';
    if (l === 'gt') return '>';
    if (l === 'quot') return '"';
    if (l === 'apos') return "'";
    if (l.startsWith('#x')) return String.fromCodePoint(parseInt(l.slice(2), 16));
    return String.fromCodePoint(parseInt(l.slice(1), 10));
  });
}

function attributes(tagText) {
  const attrs = {};
  const re = /([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  let m;
  while ((m = re.exec(tagText)) !== null) {
    attrs[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

function parsePage(html) {
  const bodyTag = /<body\b([^>]*)>/i.exec(html);
  const bodyAttrs = bodyTag ? attributes(bodyTag[1]) : {};
  const forms = [];
  const formRe = /<form\b([^>]*)>([\s\S]*?)<\/form>/gi;
  let m;
  while ((m = formRe.exec(html)) !== null) {
    const attrs = attributes(m[1]);
    forms.push({
      id: attrs.id ?? null,
      action: attrs.action ?? '',
      method: (attrs.method ?? 'get').toLowerCase(),
      inputs: [],
      buttons: [],
      inner: m[2],
    });
  }
  const byId = new Map(forms.filter((f) => f.id).map((f) => [f.id, f]));
  const controlsIn = (text) => [...text.matchAll(/<(input|button)\b([^>]*)>/gi)]
    .map((c) => ({ tag: c[1].toLowerCase(), attrs: attributes(c[2]) }));
  for (const form of forms) {
    for (const { tag, attrs } of controlsIn(form.inner)) {
      if (attrs.form && attrs.form !== form.id) continue;
      if (tag === 'input' && (attrs.type ?? 'text').toLowerCase() !== 'submit') form.inputs.push(attrs);
      else form.buttons.push(attrs);
    }
  }
  // Controls outside a form that point at one with form="id".
  const outside = html.replace(formRe, '');
  for (const { tag, attrs } of controlsIn(outside)) {
    const form = attrs.form && byId.get(attrs.form);
    if (!form) continue;
    if (tag === 'input' && (attrs.type ?? 'text').toLowerCase() !== 'submit') form.inputs.push(attrs);
    else form.buttons.push(attrs);
  }
  const title = /<title>([\s\S]*?)<\/title>/i.exec(html)?.[1]?.trim() ?? '';
  const message = /id="message"[^>]*>([\s\S]*?)</i.exec(html)?.[1]?.trim() ?? '';
  return {
    page: bodyAttrs['data-page'] ?? '',
    status: bodyAttrs['data-status'] ?? '',
    title: decodeEntities(title),
    message: decodeEntities(message),
    forms,
  };
}

function formFields(form, overrides = {}, button = undefined) {
  const fields = new URLSearchParams();
  const set = new Set(Object.keys(overrides));
  for (const input of form.inputs) {
    if (!input.name || set.has(input.name)) continue;
    const type = (input.type ?? 'text').toLowerCase();
    if ((type === 'checkbox' || type === 'radio') && !('checked' in input)) continue;
    fields.append(input.name, input.value ?? '');
  }
  for (const [k, v] of Object.entries(overrides)) fields.append(k, v);
  if (button?.name) fields.append(button.name, button.value ?? '');
  return fields;
}

// --- the browser -----------------------------------------------------------------
async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const jar = new CookieJar();
  const deadline = Date.now() + Number(opts.timeout ?? 30) * 1000;

  async function request(url, { method = 'GET', body } = {}) {
    let current = new URL(url);
    let currentMethod = method;
    let currentBody = body;
    for (let hop = 0; hop < 20; hop += 1) {
      if (Date.now() > deadline) throw new Stop(EXIT_FAIL, 'timed out');
      const headers = { accept: 'text/html', 'user-agent': 'mrmat-api-test-approve/1' };
      const cookie = jar.header(current);
      if (cookie) headers.cookie = cookie;
      if (currentBody !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
      let res;
      try {
        res = await fetch(current, {
          method: currentMethod,
          headers,
          body: currentBody === undefined ? undefined : currentBody.toString(),
          redirect: 'manual',
          signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())),
        });
      } catch (err) {
        throw new Stop(EXIT_FAIL, `request to ${current.origin}${current.pathname} failed: ${err.cause?.message ?? err.message}`);
      }
      jar.store(current, res);
      if ([301, 302, 303, 307, 308].includes(res.status)) {
        const location = res.headers.get('location');
        await res.arrayBuffer().catch(() => {});
        if (!location) throw new Stop(EXIT_FAIL, `redirect ${res.status} without Location from ${current.pathname}`);
        current = new URL(location, current);
        if (res.status === 303 || ((res.status === 301 || res.status === 302) && currentMethod === 'POST')) {
          currentMethod = 'GET';
          currentBody = undefined;
        }
        continue;
      }
      const text = await res.text();
      return { url: current, status: res.status, html: text, page: parsePage(text) };
    }
    throw new Stop(EXIT_FAIL, 'too many redirects');
  }

  const submit = (from, form, overrides, button) => {
    const action = new URL(form.action || from.url.href, from.url);
    const fields = formFields(form, overrides, button);
    if (form.method === 'post') return request(action, { method: 'POST', body: fields });
    for (const [k, v] of fields) action.searchParams.append(k, v);
    return request(action);
  };

  let resp = await request(opts.verificationUriComplete ?? opts.verificationUri);
  let codeSubmitted = false;
  let loginSubmitted = false;
  let consentSubmitted = false;

  for (let step = 0; step < 25; step += 1) {
    const { page } = resp;
    const where = `${resp.url.pathname} (HTTP ${resp.status})`;

    switch (page.page) {
      case 'device-input': {
        if (page.status === 'aborted') {
          if (opts.deny && consentSubmitted) return 'denied';
          throw new Stop(EXIT_FAIL, `the provider says the sign-in was aborted (${page.message})`);
        }
        if (['not-found', 'expired', 'already-used', 'no-code'].includes(page.status)) {
          throw new Stop(EXIT_CODE, `user code rejected: ${page.status}: ${page.message}`);
        }
        if (page.status === 'error') throw new Stop(EXIT_FAIL, `provider error on the device page: ${page.message}`);
        if (codeSubmitted || !opts.userCode) {
          throw new Stop(EXIT_FAIL, `the provider asked for the user code again at ${where}`);
        }
        const form = page.forms.find((f) => f.inputs.some((i) => i.name === 'user_code'));
        if (!form) throw new Stop(EXIT_FAIL, `no user code form at ${where}`);
        codeSubmitted = true;
        resp = await submit(resp, form, { user_code: opts.userCode });
        break;
      }
      case 'device-confirm': {
        const form = page.forms.find((f) => f.inputs.some((i) => i.name === 'confirm'));
        if (!form) throw new Stop(EXIT_FAIL, `no confirm form at ${where}`);
        codeSubmitted = true;
        resp = await submit(resp, form, {});
        break;
      }
      case 'login': {
        if (page.status === 'login-failed' || (loginSubmitted && resp.status === 401)) {
          throw new Stop(EXIT_LOGIN, `login rejected for ${opts.username}: ${page.message || 'invalid username or password'}`);
        }
        if (loginSubmitted) throw new Stop(EXIT_FAIL, `the login page came back at ${where}`);
        const form = page.forms.find((f) => f.inputs.some((i) => i.name === 'password'));
        if (!form) throw new Stop(EXIT_FAIL, `no login form at ${where}`);
        loginSubmitted = true;
        resp = await submit(resp, form, { username: opts.username, password: opts.password });
        break;
      }
      case 'consent': {
        if (consentSubmitted) throw new Stop(EXIT_FAIL, `the consent page came back at ${where}`);
        const form = page.forms.find((f) => f.buttons.some((b) => b.value === 'approve' || b.value === 'deny'));
        if (!form) throw new Stop(EXIT_FAIL, `no consent form at ${where}`);
        const button = form.buttons.find((b) => b.value === (opts.deny ? 'deny' : 'approve'));
        consentSubmitted = true;
        resp = await submit(resp, form, {}, button);
        break;
      }
      case 'device-success': {
        if (opts.deny) throw new Stop(EXIT_FAIL, 'asked to deny, but the provider reports the sign-in as approved');
        return 'approved';
      }
      case 'error':
        throw new Stop(EXIT_FAIL, `provider error page at ${where}: ${page.message || page.status}`);
      default: {
        // The provider's auto-submitting form_post page (verification_uri_complete
        // lands there): submit its only form as a browser with JavaScript would.
        const form = page.forms.length === 1 ? page.forms[0] : undefined;
        if (form && form.method === 'post' && /Submitting Callback/i.test(page.title)) {
          if (form.inputs.some((i) => i.name === 'user_code')) codeSubmitted = true;
          resp = await submit(resp, form, {});
          break;
        }
        throw new Stop(EXIT_FAIL, `unexpected page at ${where}: ${page.title || resp.html.slice(0, 80).replace(/\s+/g, ' ')}`);
      }
    }
  }
  throw new Stop(EXIT_FAIL, 'too many steps without reaching a result');
}

try {
  const outcome = await main();
  process.stdout.write(`${outcome}\n`);
  process.exit(EXIT_OK);
} catch (err) {
  if (err instanceof Stop) {
    process.stderr.write(`approve: ${err.message}\n`);
    process.exit(err.code);
  }
  process.stderr.write(`approve: unexpected failure: ${err?.stack?.split('\n')[0] ?? err}\n`);
  process.exit(EXIT_FAIL);
}
