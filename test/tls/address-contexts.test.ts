/**
 * Clients of https://<IP>/ send no SNI: a server attached to the cache serves
 * them the certificate of the address they connected to, IPv4 and IPv6, on a
 * dual-stack socket too; clients with SNI and clients on an address without a
 * certificate still get what they got before.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { localAddressName } from '../../src/tls/address-contexts.js';
import { buildMaterial } from '../../src/tls/certificate-material.js';
import { ContextCache } from '../../src/tls/context-cache.js';
import { attachServer, buildTlsOptions } from '../../src/tls/tls-options.js';
import { createTestCa, createTestLeaf, type TestCa } from '../helpers/tls-certs.js';
import { ipv6Loopback } from '../helpers/system.js';

/** `expectOther`: the server is expected to answer with a certificate for another name (the chain is still verified). */
function connect(host: string, port: number, ca: string, servername?: string, expectOther = false): Promise<{ san: string | undefined; authorized: boolean; error: string | undefined }> {
  return new Promise((resolve, reject) => {
    // servername undefined and an IP host: Node sends no SNI (RFC 6066).
    const lenient = expectOther ? { checkServerIdentity: () => undefined } : {};
    const socket = tls.connect({ host, port, ca, ...lenient, ...(servername !== undefined ? { servername } : {}) }, () => {
      resolve({ san: socket.getPeerCertificate().subjectaltname, authorized: socket.authorized, error: socket.authorizationError?.message });
      socket.end();
    });
    socket.on('error', reject);
  });
}

function listen(server: tls.Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });
}

const close = (server: tls.Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

describe('localAddressName', () => {
  it('maps an IPv4 client of a dual-stack socket to its IPv4 address and drops zone ids', () => {
    assert.equal(localAddressName('127.0.0.1'), '127.0.0.1');
    assert.equal(localAddressName('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(localAddressName('::1'), '::1');
    assert.equal(localAddressName('fe80::1%lo'), 'fe80::1');
    assert.equal(localAddressName('FE80::A'), 'fe80::a');
    assert.equal(localAddressName(undefined), undefined);
    assert.equal(localAddressName(''), undefined);
  });
});

describe('IP-address certificates for clients without SNI', () => {
  let ca: TestCa;
  let cache: ContextCache;
  const v6 = ipv6Loopback();

  before(async () => {
    ca = await createTestCa();
    cache = new ContextCache();
    for (const names of [['127.0.0.1'], ['::1'], ['www.example.test']]) {
      const leaf = await createTestLeaf(ca, { names });
      cache.add(buildMaterial(leaf.chainPem, leaf.keyPem, { managed: true }));
    }
    const fallback = await createTestLeaf(ca, { names: ['default.example.test'] });
    cache.setDefault(buildMaterial(fallback.chainPem, fallback.keyPem));
  });
  after(() => cache.close());

  it('a handshake without SNI on 127.0.0.1 gets the 127.0.0.1 certificate, verified by the client; SNI still chooses', async () => {
    const server = tls.createServer(buildTlsOptions(cache), (s) => s.end());
    const detach = attachServer(server, cache);
    const port = await listen(server, '0.0.0.0');
    try {
      const ip = await connect('127.0.0.1', port, ca.certPem);
      assert.equal(ip.san, 'IP Address:127.0.0.1');
      assert.equal(ip.authorized, true, ip.error);
      assert.equal((await connect('127.0.0.1', port, ca.certPem, 'www.example.test')).san, 'DNS:www.example.test');
      // 127.0.0.2 is loopback too and has no certificate: the server's own context was put back.
      assert.equal((await connect('127.0.0.2', port, ca.certPem, undefined, true)).san, 'DNS:default.example.test');
      // The server's own context is back after each connection: detached, the default answers again.
      detach();
      assert.equal((await connect('127.0.0.1', port, ca.certPem, undefined, true)).san, 'DNS:default.example.test');
    } finally {
      await close(server);
    }
  });

  it('a dual-stack server tells 127.0.0.1 from ::1, and an address without a certificate gets the default', { skip: v6 ? false : 'no IPv6 loopback (::1) on this machine' }, async () => {
    const server = tls.createServer(buildTlsOptions(cache), (s) => s.end());
    attachServer(server, cache);
    const port = await listen(server, '::');
    try {
      const four = await connect('127.0.0.1', port, ca.certPem);
      assert.equal(four.san, 'IP Address:127.0.0.1');
      const six = await connect('::1', port, ca.certPem);
      assert.equal(six.authorized, true, six.error);
      assert.match(six.san ?? '', /^IP Address:(0:0:0:0:0:0:0:1|::1)$/);
      assert.equal((await connect('127.0.0.2', port, ca.certPem, undefined, true)).san, 'DNS:default.example.test');
    } finally {
      await close(server);
    }
  });
});
