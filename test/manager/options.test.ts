import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CertKeeperError, ManageError } from '../../src/errors.js';
import type { CertFailedEvent } from '../../src/events.js';
import { InternalIssuer } from '../../src/issuers/internal.js';
import type { IssueRequest, Issuer, IssuedCertificate } from '../../src/issuers/types.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { loadCertificateSet } from '../../src/storage/certificates.js';
import { FileStorage } from '../../src/storage/file.js';
import { certificateLockName } from '../../src/storage/layout.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/types.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { captureLogger, silentLogger } from '../helpers/logging.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { handshake } from '../helpers/tls-client.js';
import { closeServer, listen, nextEvent, pebbleOptions, waitUntil } from '../faults/helpers.js';

/** Signs with an internal CA, except names it is told to refuse or to hold until aborted. */
class ScriptedIssuer implements Issuer {
  readonly key = 'scripted';
  readonly #inner: InternalIssuer;
  readonly refuse = new Set<string>();
  readonly hold = new Set<string>();
  readonly started: string[] = [];
  constructor(storage: Storage) {
    this.#inner = new InternalIssuer({ storage, name: 'scripted-ca', logger: silentLogger() });
  }
  async issue(request: IssueRequest): Promise<IssuedCertificate> {
    const name = request.identifiers[0]?.value ?? '';
    this.started.push(name);
    if (this.refuse.has(name)) throw new CertKeeperError('ERR_ACME_ORDER', `refused ${name} on purpose`);
    if (this.hold.has(name)) {
      await new Promise((_resolve, reject) => {
        const signal = request.signal;
        if (signal?.aborted) reject(signal.reason);
        signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    }
    return this.#inner.issue(request);
  }
}

const base = { challenges: { http01: false, tlsAlpn01: { listener: false } }, logger: silentLogger() } as const;

async function serve(keeper: CertKeeper): Promise<{ port: number; server: https.Server }> {
  const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('ok'));
  return { port: await listen(server), server };
}

describe('manager API (internal and scripted issuers)', () => {
  test('status() and list() report names, issuer, validity, serial, next renewal and failures', async () => {
    const storage = new MemoryStorage();
    const keeper = new CertKeeper({ ...base, storage, issuers: [{ type: 'internal' }] });
    try {
      await keeper.manageSync(['a.example.test', ['b.example.test', 'WWW.b.example.test']]);
      const status = keeper.status('www.b.example.test');
      assert.deepEqual(status.names, ['b.example.test', 'www.b.example.test']);
      assert.equal(status.issuer, 'internal-local');
      assert.equal(status.state, 'valid');
      assert.equal(status.failures, 0);
      assert.equal(status.lastError, undefined);
      assert.ok(status.notBefore && status.notAfter && status.nextRenewalAt);
      assert.ok(status.notBefore < status.nextRenewalAt && status.nextRenewalAt < status.notAfter);
      const set = await loadCertificateSet(storage, 'internal-local', 'b.example.test');
      assert.equal(status.serialNumber, set.meta.serialNumber);
      assert.equal(status.notAfter.toISOString(), set.meta.notAfter);
      const listed = keeper.list();
      assert.deepEqual(listed.map((s) => s.names[0]).sort(), ['a.example.test', 'b.example.test']);
      assert.deepEqual(listed.find((s) => s.names[0] === 'b.example.test'), status);
      assert.throws(() => keeper.status('unknown.example.test'), /not managed/);
    } finally {
      await keeper.close();
    }
  });

  test('manageSync per-call settings (key type, issuer) apply to those names only', async () => {
    const storage = new MemoryStorage();
    const keeper = new CertKeeper({ ...base, storage, issuers: [{ type: 'internal' }] });
    try {
      await keeper.manageSync(['ec.example.test']);
      await keeper.manageSync(['rsa.example.test'], { keyType: 'rsa2048' });
      await keeper.manageSync(['other.example.test'], { issuers: [{ type: 'internal', name: 'other' }] });
      const ec = await loadCertificateSet(storage, 'internal-local', 'ec.example.test');
      const rsa = await loadCertificateSet(storage, 'internal-local', 'rsa.example.test');
      assert.equal(ec.meta.keyType, 'ecdsa-p256');
      assert.equal(new X509Certificate(ec.certPem).publicKey.asymmetricKeyType, 'ec');
      assert.equal(rsa.meta.keyType, 'rsa2048');
      assert.equal(new X509Certificate(rsa.certPem).publicKey.asymmetricKeyType, 'rsa');
      assert.equal(keeper.status('other.example.test').issuer, 'internal-other');
      assert.equal(keeper.status('ec.example.test').issuer, 'internal-local');
    } finally {
      await keeper.close();
    }
  });

  test('unmanage() stops serving the name; other names are still served', async () => {
    const keeper = new CertKeeper({ ...base, storage: new MemoryStorage(), issuers: [{ type: 'internal' }] });
    const { port, server } = await serve(keeper);
    try {
      await keeper.manageSync(['keep.example.test', 'drop.example.test']);
      assert.equal((await handshake(port, 'drop.example.test', [])).subjectAltName, 'DNS:drop.example.test');
      keeper.unmanage(['drop.example.test']);
      await assert.rejects(handshake(port, 'drop.example.test', []));
      assert.throws(() => keeper.status('drop.example.test'), /not managed/);
      assert.equal((await handshake(port, 'keep.example.test', [])).subjectAltName, 'DNS:keep.example.test');
    } finally {
      await closeServer(server);
      await keeper.close();
    }
  });

  test('close() is idempotent, stops an order in flight and releases its lock at once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'certkeeper-close-'));
    const storage = new FileStorage({ root: dir, lockStaleMs: 60_000 });
    const issuer = new ScriptedIssuer(storage);
    issuer.hold.add('held.example.test');
    const keeper = new CertKeeper({ ...base, storage, issuers: [issuer] });
    const other = new FileStorage({ root: dir, lockStaleMs: 60_000 });
    try {
      keeper.manageAsync(['held.example.test']);
      await waitUntil(() => issuer.started.includes('held.example.test'), 'the order to start');
      const first = keeper.close();
      assert.equal(keeper.close(), first, 'the same promise');
      await first;
      await keeper.close();
      assert.throws(() => keeper.manageAsync(['x.example.test']), (e: unknown) => e instanceof CertKeeperError && e.code === 'ERR_CLOSED');
      // Lock stale period is 60 s: taking it within 5 s proves it was released, not taken over.
      const lock = certificateLockName('held.example.test');
      await other.lock(lock, { signal: AbortSignal.timeout(5_000) });
      await other.unlock(lock);
    } finally {
      await keeper.close();
      await other.close?.();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('manageAsync reports cert_obtained and cert_failed (with attempt and nextAttemptAt)', async () => {
    const storage = new MemoryStorage();
    const issuer = new ScriptedIssuer(storage);
    issuer.refuse.add('bad.example.test');
    const keeper = new CertKeeper({ ...base, storage, issuers: [issuer] });
    try {
      const obtained = nextEvent(keeper, 'cert_obtained');
      const failed = nextEvent(keeper, 'cert_failed');
      const before = Date.now();
      keeper.manageAsync(['good.example.test', 'bad.example.test']);
      const ok = await obtained;
      assert.deepEqual(ok.names, ['good.example.test']);
      assert.equal(ok.renewal, false);
      const failure: CertFailedEvent = await failed;
      assert.deepEqual(failure.names, ['bad.example.test']);
      assert.equal(failure.attempt, 1);
      assert.match(failure.error.message, /refused bad.example.test on purpose/);
      assert.ok(failure.nextAttemptAt && failure.nextAttemptAt.getTime() >= before + 60_000, 'the first retry waits about a minute');
      await waitUntil(() => keeper.status('bad.example.test').state === 'failed', 'the failed state');
      const status = keeper.status('bad.example.test');
      assert.equal(status.failures, 1);
      assert.equal(status.lastError?.code, 'ERR_ACME_ORDER');
      assert.equal(status.nextRenewalAt?.getTime(), failure.nextAttemptAt.getTime());
    } finally {
      await keeper.close();
    }
  });

  test('manageSync rejects with a ManageError naming each failed name while the other names are served', async () => {
    const storage = new MemoryStorage();
    const issuer = new ScriptedIssuer(storage);
    issuer.refuse.add('bad1.example.test');
    issuer.refuse.add('bad2.example.test');
    const keeper = new CertKeeper({ ...base, storage, issuers: [issuer] });
    const { port, server } = await serve(keeper);
    try {
      const error = await keeper.manageSync(['bad1.example.test', 'fine.example.test', ['bad2.example.test', 'alt.example.test']]).then(
        () => assert.fail('manageSync should reject'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof ManageError);
      assert.equal(error.code, 'ERR_MANAGE_FAILED');
      assert.deepEqual(error.failures.map((f) => f.names).sort(), [['bad1.example.test'], ['bad2.example.test', 'alt.example.test']]);
      assert.match(error.message, /bad1\.example\.test: refused bad1/);
      assert.match(error.message, /bad2\.example\.test, alt\.example\.test: refused bad2/);
      assert.equal((await handshake(port, 'fine.example.test', [])).subjectAltName, 'DNS:fine.example.test');
      assert.equal(keeper.status('fine.example.test').state, 'valid');
    } finally {
      await closeServer(server);
      await keeper.close();
    }
  });
});

describe('issuer fallback', { skip: skipUnlessInstalled('pebble', 'pebble-challtestsrv') }, () => {
  let pebble: PebbleHandle;
  before(async () => {
    pebble = await startPebble({ domainBlocklist: ['blocked.example.test'] });
  });
  after(async () => {
    await pebble?.stop();
  });

  test('a name the first CA refuses is obtained from the second issuer (internal)', async () => {
    const { logger, text } = captureLogger('debug');
    const keeper = new CertKeeper(pebbleOptions(pebble, new MemoryStorage(), { issuers: [{ type: 'acme' }, { type: 'internal' }], logger }));
    try {
      const issued = pebble.issuedCount();
      await keeper.manageSync(['blocked.example.test', 'allowed.example.test']);
      assert.equal(keeper.status('blocked.example.test').issuer, 'internal-local');
      assert.notEqual(keeper.status('allowed.example.test').issuer, 'internal-local', 'the first issuer is still used when it works');
      assert.equal(pebble.issuedCount(), issued + 1);
      assert.match(text(), /rejectedIdentifier/, 'the first CA did refuse the name');
    } finally {
      await keeper.close();
    }
  });

  test('an unreachable first CA falls back to the internal issuer', async () => {
    const keeper = new CertKeeper(pebbleOptions(pebble, new MemoryStorage(), {
      issuers: [{ type: 'acme', ca: 'https://127.0.0.1:1/dir' }, { type: 'internal', name: 'fallback' }],
    }));
    try {
      await keeper.manageSync(['unreachable.example.test']);
      assert.equal(keeper.status('unreachable.example.test').issuer, 'internal-fallback');
    } finally {
      await keeper.close();
    }
  });
});
