/**
 * IP-address certificates (RFC 8738) through the manager, validated for real
 * by Pebble behind the test CA, which (as Let's Encrypt) allows IP addresses
 * only under its shortlived profile: HTTP-01 and TLS-ALPN-01 for 127.0.0.1,
 * HTTP-01 for ::1 when the machine has IPv6, served to clients that send no
 * SNI (node:tls, openssl s_client, curl), DNS-01 refused before any order.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import acme from 'acme-client';
import { TrustHandle } from '../../src/acme/trust.js';
import { installAcmeClientHooks } from '../helpers/acme-client-trust.js';
import type { CertKeeperOptions } from '../../src/config/index.js';
import { ManageError } from '../../src/errors.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { serveHttps } from '../../src/serve-https.js';
import { certificateKeys } from '../../src/storage/layout.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { FakeClock, startTestCa, type TestCa } from '../../src/testing/index.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { silentLogger } from '../helpers/logging.js';
import { ipv6Loopback, skipUnlessInstalled } from '../helpers/system.js';
import { until } from '../helpers/eventually.js';
import { signedPost } from '../testing/stack.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv', 'openssl', 'curl');
const HOUR = 3_600_000;

interface Peer {
  san: string | undefined;
  serialNumber: string;
  authorized: boolean;
  error: string | undefined;
}

/** A handshake to an IP address without SNI (Node sends none for an IP host), verified against `ca`. */
function connectNoSni(host: string, port: number, ca: string): Promise<Peer> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, ca }, () => {
      const peer = socket.getPeerCertificate();
      resolve({ san: peer.subjectaltname, serialNumber: String(peer.serialNumber).toUpperCase(), authorized: socket.authorized, error: socket.authorizationError?.message });
      socket.end();
    });
    socket.on('error', reject);
  });
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { timeout: 15_000 }, (error, stdout, stderr) => {
      if (error && !stdout) reject(new Error(`${command} failed: ${stderr}`));
      else resolve(stdout + stderr);
    });
    child.stdin?.end();
  });
}

function listen(server: https.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

const closeServer = (server: https.Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

describe('IP-address certificates through the manager (real Pebble validation)', { skip }, () => {
  let pebble: PebbleHandle;
  let ca: TestCa;
  let root: string;
  let dir: string;
  let rootFile: string;

  before(async () => {
    pebble = await startPebble();
    ca = await startTestCa({
      pebble: { directoryUrl: pebble.directoryUrl, managementUrl: pebble.managementUrl, caCertificate: pebble.pebbleCaPem },
      ipProfiles: ['shortlived'],
    });
    root = await pebble.rootPem();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-ip-'));
    rootFile = join(dir, 'root.pem');
    await writeFile(rootFile, root);
  });
  after(async () => {
    await ca?.close();
    await pebble?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const options = (storage: MemoryStorage, challenges: NonNullable<CertKeeperOptions['challenges']>): CertKeeperOptions => ({
    ca: ca.directoryUrl,
    caCertificates: ca.caCertificate,
    agreeToTerms: true,
    storage,
    challenges,
    logger: silentLogger(),
  });

  test('the test CA refuses an IP address outside shortlived with rejectedIdentifier, as Let\'s Encrypt does', async () => {
    const trust = new TrustHandle([ca.caCertificate]);
    trust.addOrigin(ca.directoryUrl);
    // certkeeper installs these hooks with its first ACME connection; this test drives acme-client directly.
    installAcmeClientHooks();
    try {
      const client = new acme.Client({ directoryUrl: ca.directoryUrl, accountKey: await acme.crypto.createPrivateEcdsaKey() });
      await client.createAccount({ termsOfServiceAgreed: true });
      const refused = await signedPost(client, 'newOrder', { identifiers: [{ type: 'ip', value: '127.0.0.1' }], profile: 'classic' }).catch((e: { response?: unknown }) => e);
      const answer = (refused as { data?: { type?: string; detail?: string }; status?: number }).data ?? refused;
      assert.match(JSON.stringify(answer), /rejectedIdentifier/);
      // Without a profile the CA's default (classic) applies: refused too.
      const defaulted = await signedPost(client, 'newOrder', { identifiers: [{ type: 'ip', value: '127.0.0.1' }] }).catch((e: unknown) => e);
      assert.match(JSON.stringify((defaulted as { data?: unknown }).data ?? defaulted), /rejectedIdentifier/);
    } finally {
      await trust.close();
    }
  });

  test('HTTP-01 for 127.0.0.1: the keeper asks for shortlived, and a client without SNI gets the IP certificate (node, openssl, curl)', async () => {
    const storage = new MemoryStorage();
    const keeper = new CertKeeper(options(storage, { http01: { port: pebble.httpPort, host: '127.0.0.1' }, tlsAlpn01: false }));
    const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('hello over an IP address'));
    keeper.attachServer(server);
    try {
      await keeper.manageSync(['127.0.0.1']);
      const status = keeper.status('127.0.0.1');
      const issued = ca.certificates().find((c) => c.serialNumber.toUpperCase() === status.serialNumber?.toUpperCase());
      assert.ok(issued, 'the test CA issued the served certificate');
      assert.equal(issued.profile, 'shortlived');
      assert.deepEqual(issued.identifiers, ['127.0.0.1']);
      assert.equal(issued.notAfter.getTime() - issued.notBefore.getTime(), 160 * HOUR);

      const port = await listen(server, 0, '127.0.0.1');
      const peer = await connectNoSni('127.0.0.1', port, root);
      assert.equal(peer.san, 'IP Address:127.0.0.1');
      assert.equal(peer.authorized, true, peer.error);
      assert.equal(peer.serialNumber, status.serialNumber?.toUpperCase());

      const openssl = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-noservername', '-CAfile', rootFile, '-verify_ip', '127.0.0.1', '-verify_return_error']);
      assert.match(openssl, /Verify return code: 0 \(ok\)/);
      const served = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(openssl)?.[0];
      assert.ok(served, 'openssl printed the served certificate');
      assert.equal(new X509Certificate(served).subjectAltName, 'IP Address:127.0.0.1');
      const curl = await run('curl', ['--silent', '--show-error', '--cacert', rootFile, `https://127.0.0.1:${port}/`]);
      assert.equal(curl, 'hello over an IP address');

      // Another spelling names the same certificate.
      assert.equal(keeper.status('[127.0.0.1]').serialNumber, status.serialNumber);
    } finally {
      await closeServer(server);
      await keeper.close();
    }
  });

  test('obtain() and manageAsync() take IP addresses too: an unserved shortlived set, then one served in the background', async () => {
    const keeper = new CertKeeper(options(new MemoryStorage(), { http01: { port: pebble.httpPort, host: '127.0.0.1' }, tlsAlpn01: false }));
    const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('async'));
    keeper.attachServer(server);
    try {
      const set = await keeper.obtain(['127.0.0.1']);
      assert.equal(new X509Certificate(set.certPem).subjectAltName, 'IP Address:127.0.0.1');
      assert.equal(ca.certificate(set.certPem).profile, 'shortlived');

      // manageAsync serves, in the background, the set obtain() stored: no second order.
      const issuedBefore = ca.certificates().length;
      keeper.manageAsync(['[127.0.0.1]']);
      await until(() => keeper.status('127.0.0.1').serialNumber !== undefined, 'the stored set is served');
      assert.equal(ca.certificates().length, issuedBefore);
      assert.equal(keeper.status('127.0.0.1').serialNumber?.toUpperCase(), new X509Certificate(set.certPem).serialNumber.toUpperCase());
      const port = await listen(server, 0, '127.0.0.1');
      const peer = await connectNoSni('127.0.0.1', port, root);
      assert.equal(peer.authorized, true, peer.error);
      assert.equal(peer.san, 'IP Address:127.0.0.1');
    } finally {
      await closeServer(server);
      await keeper.close();
    }
  });

  test('TLS-ALPN-01 for 127.0.0.1 through serveHttps on Pebble\'s TLS port; the same port then serves it without SNI', async () => {
    const service = await serveHttps(['127.0.0.1'], (_req, res) => res.end('served by serveHttps'), {
      ...options(new MemoryStorage(), { http01: false, tlsAlpn01: {} }),
      httpsPort: pebble.tlsPort,
      httpPort: false,
      host: '127.0.0.1',
      http2: false,
    });
    try {
      const peer = await connectNoSni('127.0.0.1', pebble.tlsPort, root);
      assert.equal(peer.san, 'IP Address:127.0.0.1');
      assert.equal(peer.authorized, true, peer.error);
      assert.equal(ca.certificates().at(-1)?.profile, 'shortlived');
      const curl = await run('curl', ['--silent', '--show-error', '--cacert', rootFile, `https://127.0.0.1:${pebble.tlsPort}/`]);
      assert.equal(curl, 'served by serveHttps');
    } finally {
      await service.close();
    }
  });

  test('HTTP-01 for ::1 written three ways: one certificate, a filesystem-safe storage key, served without SNI on [::1]', { skip: ipv6Loopback() ? false : 'no IPv6 loopback (::1) on this machine' }, async () => {
    const storage = new MemoryStorage();
    const keeper = new CertKeeper(options(storage, { http01: { port: pebble.httpPort, host: '::1' }, tlsAlpn01: false }));
    const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('six'));
    keeper.attachServer(server);
    try {
      await keeper.manageSync(['0:0:0:0:0:0:0:1', '[::1]', '::1']);
      const status = keeper.status('::1');
      assert.deepEqual(status.names, ['::1']);
      assert.ok(status.issuer);
      const keys = certificateKeys(status.issuer, '::1');
      assert.match(keys.cert, /^certificates\/[^:]+\/__1\/__1\.crt$/);
      assert.equal(await storage.exists(keys.cert), true);

      const port = await listen(server, 0, '::1');
      const peer = await connectNoSni('::1', port, root);
      assert.equal(peer.authorized, true, peer.error);
      assert.match(peer.san ?? '', /^IP Address:(0:0:0:0:0:0:0:1|::1)$/);
      const curl = await run('curl', ['--silent', '--show-error', '--cacert', rootFile, `https://[::1]:${port}/`]);
      assert.equal(curl, 'six');
    } finally {
      await closeServer(server);
      await keeper.close();
    }
  });

  test('only DNS-01 configured: the IP address is refused with ERR_IP_CHALLENGE, no order is placed and no TXT record written', async () => {
    const records: string[] = [];
    const provider = {
      name: 'recording',
      addTxtRecord: async (record: { name: string }) => void records.push(record.name),
      removeTxtRecord: async () => undefined,
    };
    const keeper = new CertKeeper(options(new MemoryStorage(), { http01: false, tlsAlpn01: false, dns01: { provider } }));
    const ordersBefore = ca.requests('newOrder');
    try {
      const error = await keeper.manageSync(['127.0.0.1']).then(() => undefined, (e: unknown) => e);
      assert.ok(error instanceof ManageError, String(error));
      assert.equal((error.failures[0]?.error as { code?: string } | undefined)?.code, 'ERR_IP_CHALLENGE');
      assert.equal(ca.requests('newOrder'), ordersBefore);
      assert.deepEqual(records, []);
    } finally {
      await keeper.close();
    }
  });

  test('a shortlived (160 h) certificate is renewed for real when the fake clock reaches its due time; the old one is served until then', async () => {
    // The test CA dates certificates on the same clock as the keeper's renewal: moving it ages them.
    const clock = new FakeClock(Date.now());
    const aging = await startTestCa({
      pebble: { directoryUrl: pebble.directoryUrl, managementUrl: pebble.managementUrl, caCertificate: pebble.pebbleCaPem },
      ipProfiles: ['shortlived'],
      clock,
    });
    const keeper = new CertKeeper({ ...options(new MemoryStorage(), { http01: { port: pebble.httpPort, host: '127.0.0.1' }, tlsAlpn01: false }), ca: aging.directoryUrl, caCertificates: aging.caCertificate, clock });
    const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('ok'));
    keeper.attachServer(server);
    // After the clock moves, certificates are dated in the future of the real clock: compare serials, do not verify dates.
    const served = async (port: number): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, ca: root, rejectUnauthorized: false }, () => {
          resolve(String(socket.getPeerCertificate().serialNumber).toUpperCase());
          socket.end();
        });
        socket.on('error', reject);
      });
    // An hour of fake time at a time, with a real pause between steps for the keeper's I/O (a renewal runs in real time).
    const moveTo = async (target: number): Promise<void> => {
      while (clock.now() < target) {
        await clock.set(Math.min(target, clock.now() + HOUR));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    // The CA gives no renewal window (renewalInfo answers 404), as a CA without ARI: the lifetime rule alone decides.
    aging.injectFault({ endpoint: 'renewalInfo', status: 404, type: 'malformed', times: Infinity });
    try {
      await keeper.manageSync(['127.0.0.1']);
      const port = await listen(server, 0, '127.0.0.1');
      const first = keeper.status('127.0.0.1');
      const issued = aging.certificate(aging.certificates()[0]!.certId);
      assert.equal(issued.profile, 'shortlived');
      assert.equal(issued.notAfter.getTime() - issued.notBefore.getTime(), 160 * HOUR);
      assert.equal(await served(port), first.serialNumber?.toUpperCase());
      const due = keeper.status('127.0.0.1').nextRenewalAt?.getTime();
      assert.ok(due !== undefined);
      const notBefore = issued.notBefore.getTime();
      // The lifetime rule for 160 h: 80 h left, minus a jitter of at most 5 % of the window (4 h).
      assert.ok(due >= notBefore + 76 * HOUR && due <= notBefore + 80 * HOUR, `due ${new Date(due).toISOString()}`);

      await moveTo(due - 60_000);
      assert.equal(aging.certificates().length, 1, 'not renewed before its due time');
      assert.equal(await served(port), first.serialNumber?.toUpperCase(), 'the old certificate is served until then');

      const renewed = new Promise<{ serialNumber: string }>((resolve) => {
        const off = keeper.on('cert_renewed', (event) => {
          off();
          resolve(event);
        });
      });
      await moveTo(due + 1_000);
      const event = await renewed;
      assert.notEqual(event.serialNumber, first.serialNumber);
      assert.equal(aging.certificates().length, 2);
      const second = aging.certificates()[1]!;
      assert.equal(second.profile, 'shortlived');
      assert.ok(second.notBefore.getTime() >= due - 1_000, 'the new certificate is dated at the renewal');
      assert.equal(await served(port), event.serialNumber.toUpperCase(), 'a new handshake without SNI gets the new serial');
      const next = keeper.status('127.0.0.1').nextRenewalAt?.getTime();
      assert.ok(next !== undefined && next >= clock.now() + 76 * HOUR, 'the new certificate is planned a lifetime later');
    } finally {
      await closeServer(server);
      await keeper.close();
      await aging.close();
    }
  });
});
