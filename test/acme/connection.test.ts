import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import type { AcmeConnection } from '../../src/acme/connection.js';
import { acmeHttp } from '../../src/acme/http.js';
import { AcmeNetworkError } from '../../src/acme/problem.js';
import { agentFor, TrustHandle, widenTrust } from '../../src/acme/trust.js';
import { listenForConnections, type ConnectionFixture } from './connection-fixture.js';
import { createTestCa, createTestLeaf } from '../helpers/tls-certs.js';

interface Seen {
  method: string;
  path: string;
  /** The nonce the request was signed with. */
  nonce?: string;
  /** The Replay-Nonce of the answer. */
  returned: string;
}

// A fake CA: counts nonces it hands out, answers the first POST to /bad with badNonce.
describe('AcmeConnection: nonces over node:https', () => {
  let server: https.Server;
  let base: string;
  let caPem: string;
  let trust: TrustHandle;
  let fixture: ConnectionFixture;
  const seen: Seen[] = [];
  let counter = 0;
  let badLeft = 0;
  before(async () => {
    const ca = await createTestCa('connection test CA');
    caPem = ca.certPem;
    const leaf = await createTestLeaf(ca, { names: ['127.0.0.1'] });
    server = https.createServer({ cert: leaf.chainPem, key: leaf.keyPem }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const nonce = `n${++counter}`;
        const path = req.url ?? '';
        let sent: string | undefined;
        if (req.method === 'POST') {
          const jws = JSON.parse(Buffer.concat(chunks).toString()) as { protected: string };
          sent = (JSON.parse(Buffer.from(jws.protected, 'base64url').toString()) as { nonce: string }).nonce;
        }
        seen.push({ method: req.method ?? '', path, returned: nonce, ...(sent ? { nonce: sent } : {}) });
        if (path === '/dir') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ newNonce: `${base}/nonce`, newAccount: `${base}/acct`, newOrder: `${base}/order` }));
        } else if (path === '/nonce') {
          res.writeHead(200, { 'replay-nonce': nonce }).end();
        } else if (path === '/huge') {
          // More than an ACME server ever answers, in chunks, never ending on its own.
          res.writeHead(200, { 'content-type': 'application/json' });
          const chunk = Buffer.alloc(256 * 1024, 0x20);
          const pump = (): void => {
            while (res.write(chunk)) if (res.destroyed) return;
            res.once('drain', pump);
          };
          res.on('error', () => undefined);
          pump();
        } else if (path === '/bad' && badLeft > 0) {
          badLeft--;
          res.writeHead(400, { 'content-type': 'application/problem+json', 'replay-nonce': nonce }).end(JSON.stringify({ type: 'urn:ietf:params:acme:error:badNonce', detail: 'bad' }));
        } else {
          res.writeHead(200, { 'content-type': 'application/json', 'replay-nonce': nonce }).end(JSON.stringify({ status: 'valid' }));
        }
      });
    });
    fixture = await listenForConnections(server, caPem);
    ({ base, trust } = fixture);
  });
  after(() => fixture.close());

  const connection = (): AcmeConnection => fixture.connection();

  it('fetches one nonce, then signs each request with the Replay-Nonce of the previous answer', async () => {
    seen.length = 0;
    const conn = connection();
    for (let i = 0; i < 3; i++) await conn.post(`${base}/thing`, null, { ok: [200], what: 'thing' });
    assert.equal(seen.filter((s) => s.path === '/nonce').length, 1, 'one newNonce');
    const posts = seen.filter((s) => s.method === 'POST');
    assert.equal(posts[0]?.nonce, seen.find((s) => s.path === '/nonce')?.returned);
    for (let k = 1; k < posts.length; k++) assert.equal(posts[k]?.nonce, posts[k - 1]?.returned);
  });

  it('sends a badNonce request again at once with the nonce of the badNonce answer', async () => {
    seen.length = 0;
    const conn = connection();
    badLeft = 2;
    const resp = await conn.post(`${base}/bad`, { a: 1 }, { ok: [200], what: 'bad' });
    assert.equal(resp.status, 200);
    const posts = seen.filter((s) => s.method === 'POST');
    assert.equal(posts.length, 3);
    // Each resend carries the nonce the server handed out with the badNonce answer before it.
    for (let k = 1; k < posts.length; k++) assert.equal(posts[k]?.nonce, posts[k - 1]?.returned);
    assert.equal(new Set(posts.map((p) => p.nonce)).size, 3, 'never the same nonce twice');
    assert.equal(seen.filter((s) => s.path === '/nonce').length, 1, 'no newNonce for the retries');
  });

  it('verifies a private CA with its certificate alone; widening once adds the system roots', () => {
    const url = `${base}/x`;
    const narrow = agentFor(url);
    assert.ok(narrow);
    assert.equal(agentFor(url), narrow, 'one agent per origin');
    assert.equal(widenTrust(url), true);
    const wide = agentFor(url);
    assert.ok(wide && wide !== narrow);
    assert.equal(widenTrust(url), false, 'only once');
    assert.equal(widenTrust('https://unregistered.invalid/'), false);
    assert.equal(agentFor('https://unregistered.invalid/'), undefined, 'unregistered origins use the global agent');
  });
  it('an answer larger than MAX_ACME_RESPONSE_BYTES is a typed network error, not a buffer that grows without bound', async () => {
    const error = await acmeHttp(`${base}/huge`, 'GET').then(() => assert.fail('should fail'), (e: unknown) => e);
    assert.ok(error instanceof AcmeNetworkError, String(error));
    assert.match((error as Error).message, /Could not reach https:\/\/127\.0\.0\.1:\d+: the response exceeds 4194304 bytes/);
  });
});
