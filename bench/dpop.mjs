// DPoP proofs (RFC 9449) for bench/bench.py: Node's built-in crypto, Ed25519 (EdDSA, what
// the project's own client signs with), no packages.
//
//   node dpop.mjs key KEY_FILE
//       makes an Ed25519 key pair; writes the private key (PKCS#8 PEM, mode 0600) and
//       prints {"jkt": RFC 7638 thumbprint} on stdout.
//   node dpop.mjs proofs KEY_FILE HTM HTU N OUT_PREFIX FILES [TOKEN_FILE]
//       N fresh proofs (a unique jti each, iat now) for HTM and HTU (no query), with
//       ath = base64url(sha256(token)) when TOKEN_FILE is given; written one a line
//       round-robin into OUT_PREFIX.1 .. OUT_PREFIX.FILES (one file per wrk thread).
//       Prints {"n": N, "per_s": proofs a second} on stdout.
//   node dpop.mjs proofs KEY_FILE HTM HTU 1 -  ...   (OUT_PREFIX "-": the proofs on stdout)

import crypto from 'node:crypto';
import fs from 'node:fs';

const b64u = (buf) => Buffer.from(buf).toString('base64url');

function publicJwk(privateKey) {
  const { kty, crv, x } = crypto.createPublicKey(privateKey).export({ format: 'jwk' });
  return { kty, crv, x };
}

function thumbprint(jwk) {
  // RFC 7638: the required members in lexicographic order, no white space.
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x });
  return b64u(crypto.createHash('sha256').update(canonical).digest());
}

function main(argv) {
  const [cmd, ...rest] = argv;
  if (cmd === 'key') {
    const [keyFile] = rest;
    const { privateKey } = crypto.generateKeyPairSync('ed25519');
    fs.writeFileSync(keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    process.stdout.write(JSON.stringify({ jkt: thumbprint(publicJwk(privateKey)) }) + '\n');
    return 0;
  }
  if (cmd === 'proofs') {
    const [keyFile, htm, htu, nText, outPrefix, filesText, tokenFile] = rest;
    const n = Number.parseInt(nText, 10);
    const files = Number.parseInt(filesText || '1', 10);
    if (!keyFile || !htm || !htu || !(n > 0) || !outPrefix || !(files > 0)) {
      process.stderr.write('usage: node dpop.mjs proofs KEY_FILE HTM HTU N OUT_PREFIX FILES [TOKEN_FILE]\n');
      return 2;
    }
    const key = crypto.createPrivateKey(fs.readFileSync(keyFile));
    const header = b64u(JSON.stringify({ typ: 'dpop+jwt', alg: 'EdDSA', jwk: publicJwk(key) }));
    let ath = '';
    if (tokenFile) {
      const token = fs.readFileSync(tokenFile, 'utf8').trim();
      ath = `,"ath":"${b64u(crypto.createHash('sha256').update(token).digest())}"`;
    }
    // jti: a random prefix per batch and a counter, so no two proofs of any batch share one.
    const batch = b64u(crypto.randomBytes(12));
    const htmJson = JSON.stringify(htm);
    const htuJson = JSON.stringify(htu);
    const t0 = process.hrtime.bigint();
    const out = Array.from({ length: files }, () => []);
    for (let i = 0; i < n; i++) {
      const iat = Math.floor(Date.now() / 1000);
      const claims = `{"jti":"${batch}.${i}","htm":${htmJson},"htu":${htuJson},"iat":${iat}${ath}}`;
      const input = `${header}.${b64u(claims)}`;
      const sig = crypto.sign(null, Buffer.from(input), key);
      out[i % files].push(`${input}.${b64u(sig)}`);
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    if (outPrefix === '-') {
      process.stdout.write(out.flat().join('\n') + '\n');
      return 0;
    }
    out.forEach((lines, i) => fs.writeFileSync(`${outPrefix}.${i + 1}`, lines.join('\n') + '\n'));
    process.stdout.write(JSON.stringify({ n, per_s: n / secs }) + '\n');
    return 0;
  }
  process.stderr.write('usage: node dpop.mjs key KEY_FILE | proofs KEY_FILE HTM HTU N OUT_PREFIX FILES [TOKEN_FILE]\n');
  return 2;
}

process.exitCode = main(process.argv.slice(2));
