import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { chmod, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CertificateFileError, CertificateInvalidError } from '../../src/errors.js';
import type { CertExpiringEvent } from '../../src/events.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { captureLogger, silentLogger } from '../helpers/logging.js';
import { handshake } from '../helpers/tls-client.js';
import { createTestCa, createTestLeaf, type TestCa, type TestLeaf } from '../helpers/tls-certs.js';
import { makeTempDir, nextEvent, startTlsServer, writeAtomic, type TestServer } from './helpers.js';

const NAME = 'files.reload.test';
const DAY = 86_400_000;
const FAST = { debounceMs: 20, maxWaitMs: 200, recheckIntervalMs: 0 } as const;

let ca: TestCa;
let temp: { dir: string; cleanup: () => Promise<void> };
const cleanups: (() => Promise<void> | void)[] = [];

before(async () => {
  ca = await createTestCa('reload test CA');
  temp = await makeTempDir();
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await temp.cleanup();
});

async function keeperWithServer(options: { logger?: ReturnType<typeof silentLogger> } = {}): Promise<{ keeper: CertKeeper; server: TestServer }> {
  const keeper = new CertKeeper({ storage: new MemoryStorage(), logger: options.logger ?? silentLogger() });
  const server = await startTlsServer(keeper.tlsOptions());
  cleanups.push(() => keeper.close(), () => server.close());
  return { keeper, server };
}

async function servedSerial(server: TestServer, name = NAME): Promise<string> {
  return (await handshake(server.port, name, ca.certPem, { rejectUnauthorized: true })).serialNumber;
}

async function writePair(dir: string, leaf: TestLeaf, names = { cert: 'tls.crt', key: 'tls.key' }): Promise<{ cert: string; key: string }> {
  const cert = join(dir, names.cert);
  const key = join(dir, names.key);
  await writeAtomic(cert, leaf.chainPem);
  await writeAtomic(key, leaf.keyPem);
  return { cert, key };
}

async function subdir(name: string): Promise<string> {
  const dir = join(temp.dir, name);
  await mkdir(dir, { recursive: true });
  return dir;
}

describe('loadCertificateFiles: validation, rollback, retry', () => {
  it('keeps the previous certificate on a truncated certificate, a mismatched key and an expired certificate, then picks up a good pair', async () => {
    const { keeper, server } = await keeperWithServer();
    const dir = await subdir('rollback');
    const first = await createTestLeaf(ca, { names: [NAME] });
    const paths = await writePair(dir, first);
    const handle = await keeper.loadCertificateFiles({ ...paths, ...FAST });
    assert.equal(await servedSerial(server), first.serialNumber);

    // 1. Truncated certificate (a partial write).
    let failed = nextEvent(keeper, 'cert_reload_failed', (e) => e.reason === 'certificate_malformed');
    await writeAtomic(paths.cert, first.chainPem.slice(0, 200));
    let event = await failed;
    assert.equal(event.certFile, paths.cert);
    assert.equal(event.keyFile, paths.key);
    assert.deepEqual(event.names, [NAME]);
    assert.ok(event.error instanceof CertificateInvalidError);
    assert.equal((event.error as CertificateInvalidError).code, 'ERR_CERTIFICATE_INVALID');
    assert.equal(await servedSerial(server), first.serialNumber);

    // 2. The certificate back, with a key that does not match it.
    const other = await createTestLeaf(ca, { names: [NAME] });
    failed = nextEvent(keeper, 'cert_reload_failed', (e) => e.reason === 'key_mismatch');
    await writeAtomic(paths.cert, first.chainPem);
    await writeAtomic(paths.key, other.keyPem);
    event = await failed;
    assert.match(event.error.message, /does not match/);
    assert.equal(await servedSerial(server), first.serialNumber);

    // 3. An expired certificate with its own key.
    const expired = await createTestLeaf(ca, { names: [NAME], notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) });
    failed = nextEvent(keeper, 'cert_reload_failed', (e) => e.reason === 'expired');
    await writePair(dir, expired);
    event = await failed;
    assert.match(event.error.message, /expired/);
    assert.equal(await servedSerial(server), first.serialNumber);
    assert.equal(handle.material.serialNumber, first.serialNumber);

    // 4. A good pair is picked up on the next change.
    const good = await createTestLeaf(ca, { names: [NAME] });
    const loaded = nextEvent(keeper, 'cert_loaded', (e) => e.source === 'file');
    await writePair(dir, good);
    await loaded;
    // Both files are written one after the other: wait until the pair settled on the good one.
    while (handle.material.serialNumber !== good.serialNumber) await nextEvent(keeper, 'cert_loaded');
    assert.equal(await servedSerial(server), good.serialNumber);
  });

  it('reports an unreadable file with ERR_CERTIFICATE_FILE and retries when it comes back', async () => {
    const { keeper, server } = await keeperWithServer();
    const dir = await subdir('unreadable');
    const first = await createTestLeaf(ca, { names: [NAME] });
    const paths = await writePair(dir, first);
    const handle = await keeper.loadCertificateFiles({ ...paths, ...FAST });

    const failed = nextEvent(keeper, 'cert_reload_failed', (e) => e.reason === 'unreadable');
    await rm(paths.key);
    const event = await failed;
    assert.ok(event.error instanceof CertificateFileError);
    assert.equal((event.error as CertificateFileError).code, 'ERR_CERTIFICATE_FILE');
    assert.equal((event.error as CertificateFileError).path, paths.key);
    assert.equal(await servedSerial(server), first.serialNumber);

    const next = await createTestLeaf(ca, { names: [NAME] });
    await writeAtomic(paths.cert, next.chainPem);
    const loaded = nextEvent(keeper, 'cert_loaded', (e) => e.source === 'file');
    await writeAtomic(paths.key, next.keyPem);
    await loaded;
    assert.equal(handle.material.serialNumber, next.serialNumber);
    assert.equal(await servedSerial(server), next.serialNumber);
  });

  it('rejects the first load of a missing or invalid pair with a typed error', async () => {
    const keeper = new CertKeeper({ storage: new MemoryStorage(), logger: silentLogger() });
    cleanups.push(() => keeper.close());
    const dir = await subdir('first-load');
    await assert.rejects(keeper.loadCertificateFiles({ cert: join(dir, 'missing.crt'), key: join(dir, 'missing.key') }), { code: 'ERR_CERTIFICATE_FILE' });
    const leaf = await createTestLeaf(ca, { names: [NAME] });
    const other = await createTestLeaf(ca, { names: [NAME] });
    await writeAtomic(join(dir, 'a.crt'), leaf.chainPem);
    await writeAtomic(join(dir, 'b.key'), other.keyPem);
    await assert.rejects(keeper.loadCertificateFiles({ cert: join(dir, 'a.crt'), key: join(dir, 'b.key') }), { code: 'ERR_CERTIFICATE_INVALID', message: /does not match/ });
    await assert.rejects(keeper.loadCertificateFiles({ cert: '', key: 'x' }), { code: 'ERR_INVALID_OPTION' });
  });
});

describe('loadCertificateFiles: a writer between its two renames', () => {
  it('does not report a refused pair fixed within maxWaitMs, and reports one that stays (fake clock drives debounce and settle)', async () => {
    const clock = new FakeClock(Date.now());
    const capture = captureLogger('debug');
    const keeper = new CertKeeper({ storage: new MemoryStorage(), logger: capture.logger, clock });
    cleanups.push(() => keeper.close());
    const failures: string[] = [];
    keeper.on('cert_reload_failed', (e) => failures.push(e.reason ?? ''));
    const dir = await subdir('settle');
    const [first, second, third] = await Promise.all([0, 1, 2].map(() => createTestLeaf(ca, { names: [NAME] }))) as [TestLeaf, TestLeaf, TestLeaf];
    const paths = await writePair(dir, first);
    const handle = await keeper.loadCertificateFiles({ ...paths, debounceMs: 100, maxWaitMs: 10_000, recheckIntervalMs: 0 });
    const refusals = (): number => (capture.text().match(/looking again before reporting/g) ?? []).length;
    // File-system events arrive in real time; the debounce and settle timers run on the fake clock.
    const stepUntil = async (condition: () => boolean, stepMs: number): Promise<void> => {
      const deadline = Date.now() + 15_000;
      while (!condition()) {
        if (Date.now() > deadline) throw new Error('condition not reached');
        await clock.advance(stepMs);
        await new Promise((r) => setTimeout(r, 10));
      }
    };

    // The new certificate is in place, its key not yet: refused, not reported.
    await writeAtomic(paths.cert, second.chainPem);
    await stepUntil(() => refusals() === 1, 20);
    assert.deepEqual(failures, []);
    assert.equal(handle.material.serialNumber, first.serialNumber);
    // The writer's temp file for the key makes another event (and check) with the same refused pair: still not reported.
    await writeFile(join(dir, 'tls.key.tmp-writer'), second.keyPem.slice(0, 50));
    const until = clock.now() + 500;
    await stepUntil(() => clock.now() >= until, 20);
    assert.deepEqual(failures, []);

    // The key follows: the pair is served, and the refusal is never reported.
    await writeAtomic(paths.key, second.keyPem);
    await stepUntil(() => handle.material.serialNumber === second.serialNumber, 20);
    assert.deepEqual(failures, []);

    // A key that does not match and stays: reported once the settle time has passed.
    await writeAtomic(paths.key, third.keyPem);
    await stepUntil(() => refusals() === 2, 20);
    assert.deepEqual(failures, []);
    await stepUntil(() => failures.length > 0, 1_000);
    assert.deepEqual(failures, ['key_mismatch']);
    assert.equal(handle.material.serialNumber, second.serialNumber);
  });
});

describe('loadCertificateFiles: symlink layouts', () => {
  it('follows a Kubernetes-style ..data symlink swap, twice (the old target directory is deleted)', async () => {
    const { keeper, server } = await keeperWithServer();
    const mount = await subdir('k8s');
    // kubelet's AtomicWriter layout: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/
    const publish = async (stamp: string, leaf: TestLeaf): Promise<void> => {
      const target = join(mount, stamp);
      await mkdir(target);
      await writeFile(join(target, 'tls.crt'), leaf.chainPem);
      await writeFile(join(target, 'tls.key'), leaf.keyPem, { mode: 0o600 });
      await symlink(stamp, join(mount, '..data_tmp'));
      await rename(join(mount, '..data_tmp'), join(mount, '..data'));
    };
    const first = await createTestLeaf(ca, { names: [NAME] });
    await publish('..2026_01_01', first);
    await symlink('..data/tls.crt', join(mount, 'tls.crt'));
    await symlink('..data/tls.key', join(mount, 'tls.key'));
    const handle = await keeper.loadCertificateFiles({ cert: join(mount, 'tls.crt'), key: join(mount, 'tls.key'), ...FAST });
    assert.equal(await servedSerial(server), first.serialNumber);

    let previous = '..2026_01_01';
    for (const stamp of ['..2026_02_01', '..2026_03_01']) {
      const leaf = await createTestLeaf(ca, { names: [NAME] });
      const loaded = nextEvent(keeper, 'cert_loaded', (e) => e.source === 'file');
      await publish(stamp, leaf);
      await rm(join(mount, previous), { recursive: true });
      previous = stamp;
      await loaded;
      assert.equal(handle.material.serialNumber, leaf.serialNumber);
      assert.equal(await servedSerial(server), leaf.serialNumber);
    }
  });

  it("follows certbot's live/ symlinks re-pointed at new archive files", async () => {
    const { keeper, server } = await keeperWithServer();
    const root = await subdir('letsencrypt');
    const live = join(root, 'live', NAME);
    const archive = join(root, 'archive', NAME);
    await mkdir(live, { recursive: true });
    await mkdir(archive, { recursive: true });
    const publish = async (version: number, leaf: TestLeaf): Promise<void> => {
      await writeFile(join(archive, `fullchain${version}.pem`), leaf.chainPem);
      await writeFile(join(archive, `privkey${version}.pem`), leaf.keyPem, { mode: 0o600 });
      for (const [link, file] of [['fullchain.pem', `fullchain${version}.pem`], ['privkey.pem', `privkey${version}.pem`]] as const) {
        await symlink(`../../archive/${NAME}/${file}`, join(live, `${link}.new`));
        await rename(join(live, `${link}.new`), join(live, link));
      }
    };
    const first = await createTestLeaf(ca, { names: [NAME] });
    await publish(1, first);
    const handle = await keeper.loadCertificateFiles({ cert: join(live, 'fullchain.pem'), key: join(live, 'privkey.pem'), ...FAST });
    const second = await createTestLeaf(ca, { names: [NAME] });
    await publish(2, second);
    while (handle.material.serialNumber !== second.serialNumber) await nextEvent(keeper, 'cert_loaded');
    assert.equal(await servedSerial(server), second.serialNumber);
  });
});

describe('loadCertificateFiles: encrypted keys', () => {
  it('loads an encrypted key with the right passphrase; a wrong passphrase is a typed error and keeps the old certificate', async () => {
    const { keeper, server } = await keeperWithServer();
    const dir = await subdir('encrypted');
    const encrypt = (leaf: TestLeaf, passphrase: string): string =>
      createPrivateKey(leaf.keyPem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }).toString();
    const first = await createTestLeaf(ca, { names: [NAME] });
    const cert = join(dir, 'tls.crt');
    const key = join(dir, 'tls.key');
    await writeAtomic(cert, first.chainPem);
    await writeAtomic(key, encrypt(first, 'right horse'));

    await assert.rejects(keeper.loadCertificateFiles({ cert, key, passphrase: 'not-the-passphrase-42', watch: false }), (error: unknown) => {
      assert.ok(error instanceof CertificateInvalidError);
      assert.equal(error.code, 'ERR_CERTIFICATE_INVALID');
      assert.match(error.message, /could not be decrypted/);
      assert.doesNotMatch(error.message, /right horse|not-the-passphrase-42/);
      return true;
    });
    const handle = await keeper.loadCertificateFiles({ cert, key, passphrase: 'right horse', ...FAST });
    assert.equal(await servedSerial(server), first.serialNumber);

    // The key is replaced by one encrypted with another passphrase than the configured one.
    const second = await createTestLeaf(ca, { names: [NAME] });
    const failed = nextEvent(keeper, 'cert_reload_failed', (e) => e.reason === 'passphrase');
    await writeAtomic(cert, second.chainPem);
    await writeAtomic(key, encrypt(second, 'rotated'));
    const event = await failed;
    assert.equal((event.error as CertificateInvalidError).code, 'ERR_CERTIFICATE_INVALID');
    assert.equal(handle.material.serialNumber, first.serialNumber);
    assert.equal(await servedSerial(server), first.serialNumber);
  });
});

describe('loadCertificateFiles: key file permissions', () => {
  it('warns naming the key file and its mode when it is readable by group or others', { skip: process.platform === 'win32' }, async () => {
    const capture = captureLogger();
    const keeper = new CertKeeper({ storage: new MemoryStorage(), logger: capture.logger });
    cleanups.push(() => keeper.close());
    const dir = await subdir('modes');
    const leaf = await createTestLeaf(ca, { names: [NAME] });
    const cert = join(dir, 'tls.crt');
    const strictKey = join(dir, 'strict.key');
    const looseKey = join(dir, 'loose.key');
    await writeAtomic(cert, leaf.chainPem);
    await writeAtomic(strictKey, leaf.keyPem, 0o600);
    await writeAtomic(looseKey, leaf.keyPem, 0o600);
    await chmod(looseKey, 0o644);

    await keeper.loadCertificateFiles({ cert, key: strictKey, watch: false });
    assert.doesNotMatch(capture.text(), /readable by group or others/);
    await keeper.loadCertificateFiles({ cert, key: looseKey, watch: false });
    const lines = capture.text().split('\n').filter((l) => l.includes('readable by group or others'));
    assert.equal(lines.length, 1);
    const entry = JSON.parse(lines[0] as string) as { level: number; keyFile: string; mode: string };
    assert.equal(entry.level, 40);
    assert.equal(entry.keyFile, looseKey);
    assert.equal(entry.mode, '0644');
    // Never the key itself.
    assert.doesNotMatch(capture.text(), /PRIVATE KEY/);
  });
});

describe('unmanaged certificates: names and expiry', () => {
  it('swaps in a certificate with other names, announcing added and removed names', async () => {
    const { keeper, server } = await keeperWithServer();
    const dir = await subdir('names');
    const first = await createTestLeaf(ca, { names: [NAME, 'old.reload.test'] });
    const paths = await writePair(dir, first);
    const handle = await keeper.loadCertificateFiles({ ...paths, ...FAST });
    assert.equal(await servedSerial(server, 'old.reload.test'), first.serialNumber);

    const second = await createTestLeaf(ca, { names: [NAME, 'new.reload.test'] });
    const changed = nextEvent(keeper, 'cert_names_changed');
    await writePair(dir, second);
    const event = await changed;
    assert.deepEqual(event.added, ['new.reload.test']);
    assert.deepEqual(event.removed, ['old.reload.test']);
    assert.deepEqual(event.previousNames, [NAME, 'old.reload.test']);
    assert.equal(event.certFile, paths.cert);
    assert.deepEqual([...handle.names], [NAME, 'new.reload.test']);
    assert.equal(await servedSerial(server, 'new.reload.test'), second.serialNumber);
    assert.equal(keeper.cacheStats().certificates, 1);
  });

  it('announces an approaching expiry below 7 days, then below 1 day, on the injected clock', async () => {
    const clock = new FakeClock(Date.now());
    const capture = captureLogger();
    const keeper = new CertKeeper({ storage: new MemoryStorage(), logger: capture.logger, clock });
    cleanups.push(() => keeper.close());
    const events: CertExpiringEvent[] = [];
    keeper.on('cert_expiring', (e) => events.push(e));
    const leaf = await createTestLeaf(ca, { names: [NAME], notAfter: new Date(clock.now() + 8 * DAY) });
    keeper.loadCertificatePem({ cert: leaf.chainPem, key: leaf.keyPem });
    assert.equal(events.length, 0);

    await clock.advance(DAY - 60_000);
    assert.equal(events.length, 0, 'still more than 7 days left');
    await clock.advance(2 * 60_000);
    assert.equal(events.length, 1);
    assert.ok((events[0]?.remainingMs ?? 0) < 7 * DAY);
    assert.equal(events[0]?.managed, false);
    assert.deepEqual(events[0]?.names, [NAME]);

    await clock.advance(5 * DAY);
    assert.equal(events.length, 1, 'one event per threshold');
    await clock.advance(DAY);
    assert.equal(events.length, 2);
    assert.ok((events[1]?.remainingMs ?? Infinity) < DAY);
    assert.match(capture.text(), /expires soon/);

    // A certificate that already has less than a day left is announced at load, once, at the tightest threshold.
    const short = await createTestLeaf(ca, { names: ['short.reload.test'], notAfter: new Date(clock.now() + DAY / 2) });
    keeper.loadCertificatePem({ cert: short.chainPem, key: short.keyPem });
    assert.equal(events.length, 3);
    assert.ok((events[2]?.remainingMs ?? Infinity) < DAY);
  });
});
