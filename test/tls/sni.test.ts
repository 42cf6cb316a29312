/**
 * Real handshakes (node:tls, https, http2 clients) against servers built from
 * buildTlsOptions on 127.0.0.1:0.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import http2 from 'node:http2';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { InvalidNameError, NoCertificateError } from '../../src/errors.js';
import { normalizeServerName } from '../../src/names.js';
import { TlsAlpnChallengeStore } from '../../src/challenges/tls-alpn01.js';
import { buildMaterial, createContext, type CertificateMaterial } from '../../src/tls/certificate-material.js';
import { ContextCache } from '../../src/tls/context-cache.js';
import { createSniCallback } from '../../src/tls/sni.js';
import { attachServer, buildTlsOptions } from '../../src/tls/tls-options.js';
import { createTestCa, createTestLeaf, type TestCa, type TestLeaf } from '../helpers/tls-certs.js';

interface HandshakeResult {
  serial: string | undefined;
  alpn: string | false | undefined;
  error: Error | undefined;
}

function listen(server: tls.Server | http2.Http2SecureServer): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function close(server: tls.Server | http2.Http2SecureServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** One new TLS connection; resolves with the served leaf's serial and the negotiated protocol, or the error. */
function handshake(port: number, options: tls.ConnectionOptions = {}): Promise<HandshakeResult> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      resolve({ serial: cert.serialNumber?.toUpperCase(), alpn: socket.alpnProtocol ?? undefined, error: undefined });
      socket.destroy();
    });
    socket.once('error', (error) => resolve({ serial: undefined, alpn: undefined, error }));
  });
}

async function leafMaterial(ca: TestCa, names: string[], managed = true): Promise<{ leaf: TestLeaf; material: CertificateMaterial }> {
  const leaf = await createTestLeaf(ca, { names });
  return { leaf, material: buildMaterial(leaf.chainPem, leaf.keyPem, { managed }) };
}

describe('SNI serving through buildTlsOptions (https)', () => {
  let ca: TestCa;
  let cache: ContextCache;
  let server: https.Server;
  let port: number;
  let one: CertificateMaterial;
  let two: CertificateMaterial;
  let wild: CertificateMaterial;
  let fallback: CertificateMaterial;
  const loaderCalls: string[] = [];

  before(async () => {
    ca = await createTestCa();
    [one, two, wild, fallback] = (
      await Promise.all([
        leafMaterial(ca, ['one.test']),
        leafMaterial(ca, ['two.test']),
        leafMaterial(ca, ['*.example.test']),
        leafMaterial(ca, ['default.test'], false),
      ])
    ).map((x) => x.material) as [CertificateMaterial, CertificateMaterial, CertificateMaterial, CertificateMaterial];
    cache = new ContextCache({ loader: async (name) => (loaderCalls.push(name), undefined) });
    cache.add(one);
    cache.add(two);
    cache.add(wild);
    cache.setDefault(fallback);
    server = https.createServer(buildTlsOptions(cache, { minVersion: 'TLSv1.2' }), (req, res) => res.end('ok'));
    port = await listen(server);
  });
  after(async () => {
    server.closeAllConnections();
    await close(server);
    cache.close();
  });

  it('serves the right certificate per SNI name, verifiable against the CA', async () => {
    const r1 = await handshake(port, { servername: 'one.test', rejectUnauthorized: true, ca: ca.certPem });
    assert.equal(r1.error, undefined);
    assert.equal(r1.serial, one.serialNumber);
    assert.equal((await handshake(port, { servername: 'two.test' })).serial, two.serialNumber);
  });

  it('serves the wildcard for one label only: not deeper names, not the bare domain', async () => {
    assert.equal((await handshake(port, { servername: 'a.example.test' })).serial, wild.serialNumber);
    assert.equal((await handshake(port, { servername: 'a.b.example.test' })).serial, fallback.serialNumber);
    assert.equal((await handshake(port, { servername: 'example.test' })).serial, fallback.serialNumber);
  });

  it('serves the default certificate to a client without SNI', async () => {
    const r = await handshake(port, {});
    assert.equal(r.serial, fallback.serialNumber);
  });

  it('normalises SNI case and trailing dot; bad values fall back to the default and never reach the loader', async () => {
    assert.equal((await handshake(port, { servername: 'ONE.Test' })).serial, one.serialNumber);
    assert.equal((await handshake(port, { servername: 'one.test.' })).serial, one.serialNumber);
    loaderCalls.length = 0;
    for (const bad of ['a/../../foo', '*', `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.${'e'.repeat(56)}.test`]) {
      const r = await handshake(port, { servername: bad });
      // OpenSSL itself refuses some values before Node sees them; either way no loader call.
      if (r.error === undefined) assert.equal(r.serial, fallback.serialNumber, bad);
    }
    assert.deepEqual(loaderCalls, []);
  });

  it('swaps a renewed certificate atomically: a keep-alive connection carries on, new handshakes get the new serial', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
    const get = (): Promise<{ serial: string; reused: boolean; body: string }> =>
      new Promise((resolve, reject) => {
        const req = https.get({ host: '127.0.0.1', port, servername: 'one.test', agent, path: '/' }, (res) => {
          const serial = (res.socket as tls.TLSSocket).getPeerCertificate().serialNumber.toUpperCase();
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ serial, reused: req.reusedSocket, body }));
        });
        req.on('error', reject);
      });
    const first = await get();
    assert.equal(first.serial, one.serialNumber);
    const renewed = (await leafMaterial(ca, ['one.test'])).material;
    cache.replace(one.id, renewed);
    const again = await get();
    assert.deepEqual(again, { serial: one.serialNumber, reused: true, body: 'ok' });
    assert.equal((await handshake(port, { servername: 'one.test' })).serial, renewed.serialNumber);
    agent.destroy();
    one = renewed;
  });
});

describe('LRU eviction and lazy reload through real handshakes', () => {
  it('reloads an evicted certificate on its next handshake, with one loader call for 50 concurrent handshakes', async () => {
    const ca = await createTestCa();
    const stored = new Map<string, CertificateMaterial>();
    for (const name of ['l1.test', 'l2.test', 'l3.test']) stored.set(name, (await leafMaterial(ca, [name])).material);
    const loads: string[] = [];
    const evicted: string[][] = [];
    const cache = new ContextCache({
      capacity: 2,
      onEvict: (e) => evicted.push(e.names),
      loader: async (name) => {
        loads.push(name);
        await new Promise((r) => setTimeout(r, 30)); // a storage read
        return stored.get(name);
      },
    });
    for (const name of ['l1.test', 'l2.test', 'l3.test']) cache.add(stored.get(name)!);
    assert.deepEqual(evicted, [['l1.test']]);
    const server = tls.createServer(buildTlsOptions(cache), (s) => s.end());
    const port = await listen(server);
    try {
      const results = await Promise.all(Array.from({ length: 50 }, () => handshake(port, { servername: 'l1.test' })));
      assert.deepEqual(loads, ['l1.test']);
      for (const r of results) assert.equal(r.serial, stored.get('l1.test')!.serialNumber);
      assert.deepEqual(evicted, [['l1.test'], ['l2.test']]);
      // Now cached: no further load.
      assert.equal((await handshake(port, { servername: 'l1.test' })).serial, stored.get('l1.test')!.serialNumber);
      assert.deepEqual(loads, ['l1.test']);
      // A name with nothing anywhere and no default: the handshake fails cleanly.
      const missing = await handshake(port, { servername: 'none.test' });
      assert.ok(missing.error);
    } finally {
      await close(server);
      cache.close();
    }
  });
});

describe('SNICallback given raw values', () => {
  it('rejects bad SNI values before any loader, and serves a cached name without normalising', async () => {
    const ca = await createTestCa();
    const { material } = await leafMaterial(ca, ['cached.test']);
    let normalizeCalls = 0;
    const loads: string[] = [];
    const cache = new ContextCache({
      normalize: (s) => {
        normalizeCalls++;
        return normalizeServerName(s);
      },
      loader: async (n) => (loads.push(n), undefined),
    });
    cache.add(material);
    const errors: Error[] = [];
    const sni = createSniCallback(cache, { onError: (e) => errors.push(e) });
    const call = (name: string): Promise<{ err: Error | null; ctx: tls.SecureContext | undefined }> =>
      new Promise((resolve) => sni.call({} as tls.TLSSocket, name, (err, ctx) => resolve({ err, ctx })));

    const hit = await call('cached.test');
    assert.equal(hit.err, null);
    assert.ok(hit.ctx);
    assert.equal(normalizeCalls, 0);

    for (const bad of ['a/../../foo', 'a\u0000b.test', 'x'.repeat(300), '*', '*.cached.test']) {
      const r = await call(bad);
      assert.ok(r.err instanceof InvalidNameError, bad);
    }
    assert.deepEqual(loads, []);
    const unknown = await call('Unknown.TEST.');
    assert.ok(unknown.err instanceof NoCertificateError);
    assert.deepEqual(loads, ['unknown.test']);
    assert.equal(errors.length, 6);
    cache.close();
  });
});

describe('ALPN and HTTP/2 (http2.createSecureServer)', () => {
  let ca: TestCa;
  let cache: ContextCache;
  let server: http2.Http2SecureServer;
  let port: number;
  let site: CertificateMaterial;
  let challenge: CertificateMaterial;

  before(async () => {
    ca = await createTestCa();
    site = (await leafMaterial(ca, ['h2.test'])).material;
    const selfSigned = await createTestLeaf(undefined, { names: ['h2.test'] });
    challenge = buildMaterial(selfSigned.chainPem, selfSigned.keyPem);
    const store = new TlsAlpnChallengeStore();
    store.set('h2.test', createContext(challenge));
    cache = new ContextCache();
    cache.add(site);
    server = http2.createSecureServer(
      buildTlsOptions(cache, { ALPNProtocols: ['h2', 'http/1.1'] }, { alpnChallenges: store }) as http2.SecureServerOptions,
      (req, res) => res.end(`hello over ${req.httpVersion}`),
    );
    port = await listen(server);
  });
  after(async () => {
    await close(server);
    cache.close();
  });

  it("gives a ['acme-tls/1'] client the challenge certificate", async () => {
    const r = await handshake(port, { servername: 'h2.test', ALPNProtocols: ['acme-tls/1'] });
    assert.equal(r.error, undefined);
    assert.equal(r.alpn, 'acme-tls/1');
    assert.equal(r.serial, challenge.serialNumber);
  });

  it("gives a ['h2', 'acme-tls/1'] client the normal certificate and h2", async () => {
    const r = await handshake(port, { servername: 'h2.test', ALPNProtocols: ['h2', 'acme-tls/1'] });
    assert.equal(r.serial, site.serialNumber);
    assert.equal(r.alpn, 'h2');
  });

  it('prefers the server order and ends a validation for a name without a challenge', async () => {
    assert.equal((await handshake(port, { servername: 'h2.test', ALPNProtocols: ['http/1.1', 'h2'] })).alpn, 'h2');
    assert.equal((await handshake(port, { servername: 'h2.test', ALPNProtocols: ['http/1.1'] })).alpn, 'http/1.1');
    assert.ok((await handshake(port, { servername: 'other.test', ALPNProtocols: ['acme-tls/1'] })).error);
    assert.ok((await handshake(port, { servername: 'h2.test', ALPNProtocols: ['spdy/3'] })).error);
  });

  it('serves HTTP/2 requests', async () => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { servername: 'h2.test', ca: ca.certPem, checkServerIdentity: () => undefined });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ':path': '/' });
        let data = '';
        req.on('data', (d: Buffer) => (data += d.toString()));
        req.on('end', () => resolve(data));
        req.on('error', reject);
        req.end();
      });
      assert.equal(body, 'hello over 2.0');
      assert.equal((session.socket as tls.TLSSocket).getPeerCertificate().serialNumber.toUpperCase(), site.serialNumber);
    } finally {
      session.close();
    }
  });
});

describe('client-CA reload (mTLS) and the no-SNI server context', () => {
  it('verifies new handshakes against the new client CA, with SNI and without', async () => {
    const serverCa = await createTestCa('server CA');
    const [ca1, ca2] = await Promise.all([createTestCa('client CA 1'), createTestCa('client CA 2')]);
    const [client1, client2] = await Promise.all([
      createTestLeaf(ca1, { names: ['client1.test'], usage: 'client' }),
      createTestLeaf(ca2, { names: ['client2.test'], usage: 'client' }),
    ]);
    const site = (await leafMaterial(serverCa, ['mtls.test'])).material;
    const cache = new ContextCache();
    cache.add(site);
    cache.setDefault(site);
    const userOptions = { requestCert: true, rejectUnauthorized: true, ca: ca1.certPem };
    const server = https.createServer(buildTlsOptions(cache, userOptions), (req, res) => res.end('ok'));
    const detach = attachServer(server, cache, userOptions);
    const port = await listen(server);
    const request = (client: TestLeaf, servername: string | undefined): Promise<string> =>
      new Promise((resolve) => {
        const req = https.get(
          { host: '127.0.0.1', port, agent: false, ...(servername ? { servername } : {}), ca: serverCa.certPem, cert: client.chainPem, key: client.keyPem, checkServerIdentity: () => undefined },
          (res) => {
            res.resume();
            res.on('end', () => resolve(`status ${res.statusCode}`));
          },
        );
        req.on('error', () => resolve('rejected'));
      });
    try {
      assert.equal(await request(client1, 'mtls.test'), 'status 200');
      assert.equal(await request(client2, 'mtls.test'), 'rejected');
      assert.equal(await request(client1, undefined), 'status 200');

      await cache.setContextOptions({ ...cache.contextOptions, ca: ca2.certPem });
      assert.equal(await request(client1, 'mtls.test'), 'rejected');
      assert.equal(await request(client2, 'mtls.test'), 'status 200');
      assert.equal(await request(client1, undefined), 'rejected');
      assert.equal(await request(client2, undefined), 'status 200');

      // A new default certificate reaches clients without SNI too.
      const next = (await leafMaterial(serverCa, ['mtls.test'])).material;
      cache.setDefault(next);
      assert.equal((await handshake(port, { cert: client2.chainPem, key: client2.keyPem })).serial, next.serialNumber);
    } finally {
      detach();
      server.closeAllConnections();
      await close(server);
      cache.close();
    }
  });
});
