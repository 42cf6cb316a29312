/**
 * Pebble's own floor for issue 20: the least an ACME client can do per certificate, as fast as
 * Pebble answers. Raw JWS (ES256, node:crypto) over one keep-alive HTTPS agent; per name:
 * newOrder, authorization, HTTP-01 answer (a minimal responder on Pebble's validation port),
 * poll the authorization, finalize with a CSR, poll the order, download the certificate.
 * No retries, no backoff, no storage: polls every POLL_MS. `concurrency` orders in flight
 * (Pebble 2.4 wedges above about 25; the benchmark keeps 10, like certkeeper's default).
 */
import { createHash, generateKeyPairSync, sign, webcrypto, type KeyObject } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import * as x509 from '@peculiar/x509';

const POLL_MS = 5;
/** A request Pebble never answers (it can wedge) fails the run instead of hanging the benchmark. */
const REQUEST_TIMEOUT_MS = 20_000;
const b64u = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

export interface FloorResult {
  ms: number;
  ok: number;
  failed: number;
  errors: string[];
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

class Jws {
  private readonly nonces: string[] = [];
  private readonly key: KeyObject;
  readonly jwk: { crv: string; kty: string; x: string; y: string };
  kid?: string;
  constructor(private readonly agent: https.Agent, private readonly newNonceUrl: string) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.key = privateKey;
    const j = publicKey.export({ format: 'jwk' }) as { crv: string; kty: string; x: string; y: string };
    this.jwk = { crv: j.crv, kty: j.kty, x: j.x, y: j.y };
  }
  thumbprint(): string {
    return b64u(createHash('sha256').update(JSON.stringify(this.jwk)).digest());
  }
  request(method: string, url: string, body?: string): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = https.request(url, { method, agent: this.agent, headers: body === undefined ? {} : { 'content-type': 'application/jose+json' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const nonce = res.headers['replay-nonce'];
          if (typeof nonce === 'string') this.nonces.push(nonce);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`${method} ${url}: no answer in ${REQUEST_TIMEOUT_MS / 1000} s`)));
      req.end(body);
    });
  }
  async post(url: string, payload: unknown | undefined): Promise<Reply> {
    let nonce = this.nonces.pop();
    if (nonce === undefined) {
      await this.request('HEAD', this.newNonceUrl);
      nonce = this.nonces.pop() as string;
    }
    const protectedHeader = b64u(JSON.stringify({ alg: 'ES256', nonce, url, ...(this.kid ? { kid: this.kid } : { jwk: this.jwk }) }));
    const body = payload === undefined ? '' : b64u(JSON.stringify(payload));
    const signature = sign('sha256', Buffer.from(`${protectedHeader}.${body}`), { key: this.key, dsaEncoding: 'ieee-p1363' });
    const reply = await this.request('POST', url, JSON.stringify({ protected: protectedHeader, payload: body, signature: b64u(signature) }));
    if (reply.status >= 400) throw new Error(`${url}: ${reply.status} ${reply.body.toString('utf8').slice(0, 200)}`);
    return reply;
  }
}

const json = (r: Reply): Record<string, unknown> => JSON.parse(r.body.toString('utf8')) as Record<string, unknown>;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function csrDer(name: string): Promise<string> {
  type Create = typeof x509.Pkcs10CertificateRequestGenerator.create;
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as unknown as Parameters<Create>[0]['keys'];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: `CN=${name}`, keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: name }])] },
    webcrypto as unknown as Parameters<Create>[1],
  );
  return b64u(Buffer.from(csr.rawData));
}

/** Issues one certificate per name from `directoryUrl` (account registration included in the time). */
export async function pebbleFloor(options: { directoryUrl: string; caPem: string; http01Port: number; names: string[]; concurrency: number }): Promise<FloorResult> {
  const tokens = new Map<string, string>();
  const responder = http.createServer((req, res) => {
    const token = req.url?.split('/.well-known/acme-challenge/')[1];
    const body = token === undefined ? undefined : tokens.get(token);
    if (body === undefined) res.writeHead(404).end();
    else res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
  });
  await new Promise<void>((r) => responder.listen(options.http01Port, '127.0.0.1', () => r()));
  const agent = new https.Agent({ keepAlive: true, ca: options.caPem, maxSockets: options.concurrency + 2 });
  const errors: string[] = [];
  let ok = 0;
  const t0 = performance.now();
  try {
    const dir = await new Promise<Record<string, string>>((resolve, reject) => {
      https.get(options.directoryUrl, { agent }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve(JSON.parse(text) as Record<string, string>));
      }).on('error', reject);
    });
    const jws = new Jws(agent, dir.newNonce as string);
    const account = await jws.post(dir.newAccount as string, { termsOfServiceAgreed: true, contact: ['mailto:bench@example.test'] });
    jws.kid = account.headers.location as string;
    const thumb = jws.thumbprint();
    const poll = async (url: string, until: (body: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
      for (;;) {
        const body = json(await jws.post(url, undefined));
        if (body.status === 'invalid') throw new Error(`${url} invalid: ${JSON.stringify(body).slice(0, 300)}`);
        if (until(body)) return body;
        await sleep(POLL_MS);
      }
    };
    const issue = async (name: string): Promise<void> => {
      const orderReply = await jws.post(dir.newOrder as string, { identifiers: [{ type: 'dns', value: name }] });
      const orderUrl = orderReply.headers.location as string;
      const order = json(orderReply) as { authorizations: string[]; finalize: string };
      const csr = csrDer(name);
      for (const authzUrl of order.authorizations) {
        const authz = json(await jws.post(authzUrl, undefined)) as { status: string; challenges: { type: string; url: string; token: string }[] };
        if (authz.status === 'valid') continue;
        const challenge = authz.challenges.find((c) => c.type === 'http-01');
        if (!challenge) throw new Error(`${name}: no http-01 challenge`);
        tokens.set(challenge.token, `${challenge.token}.${thumb}`);
        await jws.post(challenge.url, {});
        await poll(authzUrl, (b) => b.status === 'valid');
        tokens.delete(challenge.token);
      }
      await jws.post(order.finalize, { csr: await csr });
      const done = (await poll(orderUrl, (b) => b.status === 'valid')) as { certificate: string };
      const pem = (await jws.post(done.certificate, undefined)).body.toString('utf8');
      if (!pem.includes('BEGIN CERTIFICATE')) throw new Error(`${name}: no certificate`);
      ok++;
    };
    let next = 0;
    await Promise.all(
      Array.from({ length: options.concurrency }, async () => {
        while (next < options.names.length) {
          const name = options.names[next++] as string;
          await issue(name).catch((error: unknown) => errors.push(error instanceof Error ? error.message : String(error)));
        }
      }),
    );
  } finally {
    agent.destroy();
    await new Promise<void>((r) => responder.close(() => r()));
  }
  return { ms: performance.now() - t0, ok, failed: options.names.length - ok, errors: errors.slice(0, 3) };
}
