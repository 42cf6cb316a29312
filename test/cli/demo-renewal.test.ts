/**
 * The demo's certificate is a managed certificate from the internal CA: with
 * an injected clock, the ordinary scheduler renews the leaf once two thirds of
 * its lifetime have passed and the server serves the new one without a
 * restart; the 7-day intermediate is replaced before it expires.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { startDemo, type DemoServer } from '../../src/cli/demo.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { silentLogger } from '../helpers/logging.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

interface Served {
  leaf: X509Certificate;
  intermediate: X509Certificate;
  authorized: boolean;
  authorizationError: string | undefined;
}

/** One handshake; returns the chain the server sent. Verification by Node uses real time, so it is reported, not required. */
function fetchChain(port: number, servername: string | undefined, ca: string): Promise<Served> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...(servername ? { servername } : {}), ca, rejectUnauthorized: false }, () => {
      const peer = socket.getPeerCertificate(true);
      const leaf = new X509Certificate(peer.raw);
      const issuer = peer.issuerCertificate;
      const intermediate = new X509Certificate(issuer.raw);
      resolve({ leaf, intermediate, authorized: socket.authorized, authorizationError: socket.authorizationError ? String(socket.authorizationError) : undefined });
      socket.end();
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('handshake timed out')));
    socket.on('error', reject);
  });
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** The chain verifies to the root by signature, and every certificate is valid at `now`. */
function assertChainAt(served: Served, root: X509Certificate, now: number): void {
  assert.ok(served.leaf.checkIssued(served.intermediate) && served.leaf.verify(served.intermediate.publicKey), 'leaf signed by the intermediate');
  assert.ok(served.intermediate.checkIssued(root) && served.intermediate.verify(root.publicKey), 'intermediate signed by the root');
  for (const cert of [served.leaf, served.intermediate, root]) {
    assert.ok(Date.parse(cert.validFrom) <= now && now < Date.parse(cert.validTo), `${cert.subject} valid at ${new Date(now).toISOString()}`);
  }
}

describe('demo certificate renewal with an injected clock', () => {
  let dir: string;
  let demo: DemoServer | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-demo-renewal-'));
  });
  after(async () => {
    await demo?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('leaf for localhost and 127.0.0.1 verifies to the root; renewed past 2/3 of its life and served without restart; intermediate replaced before expiry', async () => {
    // Start at real time so Node's own verification of the first certificate applies.
    const clock = new FakeClock(Date.now());
    demo = await startDemo({ port: 0, storageRoot: join(dir, 'storage'), logger: silentLogger(), clock });
    const rootPem = await readFile(demo.rootCertificatePath, 'utf8');
    const root = new X509Certificate(rootPem);

    const first = await fetchChain(demo.port, 'localhost', rootPem);
    assert.ok(first.authorized, first.authorizationError);
    assert.equal(first.leaf.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.ok(first.leaf.checkHost('localhost') && first.leaf.checkIP('127.0.0.1'));
    const noSni = await fetchChain(demo.port, undefined, rootPem);
    assert.ok(noSni.authorized, noSni.authorizationError);
    assert.equal(noSni.leaf.serialNumber, first.leaf.serialNumber);
    const lifetime = Date.parse(first.leaf.validTo) - Date.parse(first.leaf.validFrom);
    assert.ok(lifetime > 23 * HOUR && lifetime <= 25 * HOUR, 'default leaf lifetime is about 24 h');

    let served = first;
    const intermediates = new Set([first.intermediate.serialNumber]);
    const start = clock.now();
    // Past 2/3 of each leaf's life, seven days running: the leaf is renewed each time, the intermediate (7 days) at least once.
    while (clock.now() - start < 7 * DAY) {
      const renewed = new Promise<void>((resolve) => {
        const off = demo?.keeper.on('cert_renewed', () => {
          off?.();
          resolve();
        });
      });
      const leafStart = Date.parse(served.leaf.validFrom);
      const leafEnd = Date.parse(served.leaf.validTo);
      await clock.set(leafStart + ((leafEnd - leafStart) * 2) / 3 + 60_000);
      await withTimeout(renewed, 15_000, 'no renewal after moving the clock');
      // The renewal releases its storage lock after the event; jumping the clock before that would join the finished attempt.
      while (demo.keeper.orderStats().inFlight > 0) await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      const next = await fetchChain(demo.port, 'localhost', rootPem);
      assert.notEqual(next.leaf.serialNumber, served.leaf.serialNumber, 'a new leaf is served without a restart');
      assertChainAt(next, root, clock.now());
      // The intermediate in use always has more than the leaf's lifetime left.
      assert.ok(Date.parse(next.intermediate.validTo) >= Date.parse(next.leaf.validTo));
      intermediates.add(next.intermediate.serialNumber);
      served = next;
    }
    assert.ok(intermediates.size >= 2, 'the intermediate was replaced');
    assert.equal(served.intermediate.verify(root.publicKey), true);
  });
});
