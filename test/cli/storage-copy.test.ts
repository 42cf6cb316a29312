/**
 * `certkeeper storage copy` and `storage verify`, run through the built bin:
 * from files to the real Redis and PostgreSQL and back, with a damaged set
 * (torn certificate), a broken chain, a newer set already on the target (kept)
 * and an older one (replaced). Also: `--storage` naming a directory that does
 * not exist is an error, not an empty list; credentials never reach stderr.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { FileStorage, loadCertificateSet, saveCertificateSet, StorageNotFoundError, storageFromUrl, type CertificateSet, type Storage } from 'certkeeper';
import { buildCertificateMeta } from '../../src/storage/certificates.js';
import { POSTGRES_URL, postgresSkipReason } from '../../storage-adapters/postgres/test/server.js';
import { REDIS_URL, deleteByPrefix, redisSkipReason } from '../../storage-adapters/redis/test/server.js';
import { createTestCa, createTestLeaf, type TestCa } from '../helpers/tls-certs.js';
import { freePort, REPO_ROOT, type CliResult } from './helpers.js';

const BIN = join(REPO_ROOT, 'dist', 'cli', 'main.js');
const skipBuild = existsSync(BIN) ? false : 'dist/ not built; run npm run build';
const ISSUER = 'copy-test-ca';
const DAY = 86_400_000;
const runId = randomBytes(4).toString('hex');

function runBin(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { HOME: process.env.HOME, PATH: process.env.PATH, CERTKEEPER_LOG_LEVEL: 'error', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

async function setFor(ca: TestCa, name: string, validDays: number): Promise<CertificateSet> {
  const leaf = await createTestLeaf(ca, { names: [name], notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + validDays * DAY) });
  return { certPem: leaf.chainPem, keyPem: leaf.keyPem, meta: buildCertificateMeta({ certPem: leaf.chainPem, keyPem: leaf.keyPem, issuerKey: ISSUER, names: [name] }) };
}

async function serialOf(storage: Storage, name: string): Promise<string> {
  return new X509Certificate((await loadCertificateSet(storage, ISSUER, name)).certPem).serialNumber;
}

type Outcomes = Record<string, string>;

function outcomes(stdout: string): { certificates: Outcomes; folders: Outcomes; report: Record<string, unknown> } {
  const report = JSON.parse(stdout) as { certificates: { name: string; outcome: string }[]; accounts: { folder: string; outcome: string }[]; internalCa: { folder: string; outcome: string }[] };
  return {
    certificates: Object.fromEntries(report.certificates.map((r) => [r.name, r.outcome])),
    folders: Object.fromEntries([...report.accounts, ...report.internalCa].map((r) => [r.folder, r.outcome])),
    report,
  };
}

const ACCOUNT = 'acme/copy-test-ca/users/ops@copy.test';
const CA = 'internal/local';

describe('certkeeper storage copy / verify', { skip: skipBuild }, async () => {
  const redisSkip = await redisSkipReason();
  const postgresSkip = await postgresSkipReason();
  let dir: string;
  let ca: TestCa;
  const source: Record<string, CertificateSet> = {};
  const redisPrefix = `ck-copy-test:${runId}:`;
  const schema = `ck_copy_${runId}`;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-storage-copy-'));
    ca = await createTestCa();
    const files = new FileStorage({ root: join(dir, 'source') });
    try {
      for (const [name, days] of [['good.copy.test', 10], ['newer.copy.test', 10], ['older.copy.test', 20], ['damaged.copy.test', 10]] as const) {
        source[name] = await setFor(ca, name, days);
        await saveCertificateSet(files, source[name]);
      }
      // A torn write: the certificate no longer matches its sidecar.
      const other = await setFor(ca, 'other.copy.test', 10);
      await files.store('certificates/copy-test-ca/damaged.copy.test/damaged.copy.test.crt', Buffer.from(other.certPem));
      // A chain whose second certificate does not parse (the leaf and key are fine).
      const chained = await setFor(ca, 'chain.copy.test', 10);
      await saveCertificateSet(files, { ...chained, certPem: `${chained.certPem}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n` });
      await files.store(`${ACCOUNT}/ops@copy.test.key`, Buffer.from('account key bytes'));
      await files.store(`${ACCOUNT}/ops@copy.test.json`, Buffer.from('{"url":"https://ca.test/acct/1"}'));
      await files.store(`${CA}/root.crt`, Buffer.from('root certificate bytes'));
      await files.store(`${CA}/root.key`, Buffer.from('root key bytes'));
    } finally {
      await files.close();
    }
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
    if (!redisSkip) {
      const admin = new Redis(REDIS_URL);
      await deleteByPrefix(admin, redisPrefix);
      await admin.quit();
    }
    if (!postgresSkip) {
      const admin = new pg.Client({ connectionString: POSTGRES_URL });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    }
  });

  const backends = [
    { name: 'Redis', skip: redisSkip, url: () => `${REDIS_URL}/0?prefix=${encodeURIComponent(redisPrefix)}` },
    { name: 'PostgreSQL', skip: postgresSkip, url: () => `${POSTGRES_URL}?schema=${schema}` },
  ];
  for (const backend of backends) {
    test(`files -> ${backend.name} -> files: damaged sets stay behind, a newer target set is kept, an older one replaced`, { skip: backend.skip }, async () => {
      const url = backend.url();
      const from = join(dir, 'source');
      const target = await storageFromUrl(url);
      let kept: CertificateSet;
      try {
        kept = await setFor(ca, 'newer.copy.test', 30);
        await saveCertificateSet(target, kept);
        await saveCertificateSet(target, await setFor(ca, 'older.copy.test', 5));
      } finally {
        await target.close?.();
      }

      const dry = await runBin(['storage', 'copy', '--from', from, '--to', url, '--dry-run', '--json']);
      assert.equal(dry.code, 1, `damaged source sets fail the run\n${dry.stderr}`);
      const planned = outcomes(dry.stdout);
      assert.deepEqual(planned.certificates, {
        'chain.copy.test': 'damaged',
        'damaged.copy.test': 'damaged',
        'good.copy.test': 'would-copy',
        'newer.copy.test': 'target-newer',
        'older.copy.test': 'would-copy',
      });
      assert.deepEqual(planned.folders, { [ACCOUNT]: 'would-copy', [CA]: 'would-copy' });

      const check = await storageFromUrl(url);
      try {
        await assert.rejects(loadCertificateSet(check, ISSUER, 'good.copy.test'), StorageNotFoundError, 'a dry run writes nothing');
      } finally {
        await check.close?.();
      }

      const copy = await runBin(['storage', 'copy', '--from', from, '--to', url, '--json']);
      assert.equal(copy.code, 1, copy.stderr);
      const done = outcomes(copy.stdout);
      assert.deepEqual(done.certificates, {
        'chain.copy.test': 'damaged',
        'damaged.copy.test': 'damaged',
        'good.copy.test': 'copied',
        'newer.copy.test': 'target-newer',
        'older.copy.test': 'copied',
      });
      assert.deepEqual(done.folders, { [ACCOUNT]: 'copied', [CA]: 'copied' });

      const again = await runBin(['storage', 'copy', '--from', from, '--to', url]);
      assert.equal(again.code, 1);
      assert.match(again.stdout, /^Certificate sets: .*2 damaged.*$/m);
      assert.match(again.stdout, /^unchanged\s+good\.copy\.test/m);
      assert.match(again.stdout, /^Internal CA: 1 unchanged$/m);

      const onTarget = await storageFromUrl(url);
      try {
        assert.equal(await serialOf(onTarget, 'newer.copy.test'), new X509Certificate(kept.certPem).serialNumber, 'the newer set on the target is untouched');
        assert.equal(await serialOf(onTarget, 'older.copy.test'), new X509Certificate(source['older.copy.test']!.certPem).serialNumber);
        assert.equal(await serialOf(onTarget, 'good.copy.test'), new X509Certificate(source['good.copy.test']!.certPem).serialNumber);
        assert.equal((await onTarget.load(`${CA}/root.key`)).toString(), 'root key bytes');
      } finally {
        await onTarget.close?.();
      }

      const verified = await runBin(['storage', 'verify', url, '--json']);
      assert.equal(verified.code, 0, verified.stderr);
      const checks = JSON.parse(verified.stdout) as { sets: { name: string; ok: boolean }[]; damaged: number };
      assert.deepEqual(checks.sets.map((s) => [s.name, s.ok]).sort(), [['good.copy.test', true], ['newer.copy.test', true], ['older.copy.test', true]]);

      const back = join(dir, `back-from-${backend.name}`);
      const restore = await runBin(['storage', 'copy', '--from', url, '--to', `file:${back}`, '--json']);
      assert.equal(restore.code, 0, restore.stderr);
      assert.deepEqual(outcomes(restore.stdout).certificates, { 'good.copy.test': 'copied', 'newer.copy.test': 'copied', 'older.copy.test': 'copied' });
      const files = new FileStorage({ root: back });
      try {
        assert.equal(await serialOf(files, 'newer.copy.test'), new X509Certificate(kept.certPem).serialNumber);
        assert.equal(await readFile(join(back, ACCOUNT, 'ops@copy.test.json'), 'utf8'), '{"url":"https://ca.test/acct/1"}');
      } finally {
        await files.close();
      }
    });
  }

  test('storage verify reports the damaged sets and exits 1', async () => {
    const human = await runBin(['storage', 'verify', join(dir, 'source')]);
    assert.equal(human.code, 1, human.stderr);
    assert.match(human.stdout, /^DAMAGED\s+chain\.copy\.test\s+copy-test-ca\s+certificate 3 of the chain does not parse/m);
    assert.match(human.stdout, /^DAMAGED\s+damaged\.copy\.test\s+copy-test-ca\s+.*sidecar fingerprint/m);
    assert.match(human.stdout, /^ok\s+good\.copy\.test/m);
    assert.match(human.stdout, /5 certificate set\(s\) checked in .*: 2 damaged\.$/m);
    const json = await runBin(['storage', 'verify', '--json'], { CERTKEEPER_STORAGE: join(dir, 'source') });
    assert.equal(json.code, 1);
    assert.equal((JSON.parse(json.stdout) as { damaged: number }).damaged, 2);
  });

  test('a storage directory that does not exist is a usage error for readers, not an empty store', async () => {
    const missing = join(dir, 'no-such-dir');
    for (const [args, env] of [
      [['list', '--storage', missing], {}],
      [['list'], { CERTKEEPER_STORAGE: missing }],
      [['status', 'a.test', '--storage', `file:${missing}`], {}],
      [['storage', 'verify', missing], {}],
      [['storage', 'copy', '--from', missing, '--to', join(dir, 'elsewhere')], {}],
    ] as const) {
      const result = await runBin([...args], env);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stdout}${result.stderr}`);
      assert.match(result.stderr, /storage directory .*no-such-dir does not exist \[ERR_INVALID_OPTION\]/, args.join(' '));
      assert.doesNotMatch(result.stdout, /No certificates/);
    }
    assert.equal(existsSync(join(dir, 'elsewhere')), false, 'nothing created on the target');
  });

  test('the same storage as --from and --to, and an unknown scheme, are usage errors', async () => {
    const same = await runBin(['storage', 'copy', '--from', join(dir, 'source'), '--to', `file:${join(dir, 'source')}`]);
    assert.equal(same.code, 2);
    assert.match(same.stderr, /same storage as --from/);
    const unknown = await runBin(['list', '--storage', 's3://bucket/x']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unsupported storage URL scheme "s3:".*redis:\/\//);
  });

  test('trust on a backend URL prints the root certificate itself; demo refuses one (it needs files)', { skip: redisSkip }, async () => {
    const url = `${REDIS_URL}/0?prefix=${encodeURIComponent(`${redisPrefix}trust:`)}`;
    const trust = await runBin(['trust', '--storage', url]);
    assert.equal(trust.code, 0, trust.stderr);
    assert.ok(new X509Certificate(trust.stdout).ca, 'a CA certificate on stdout');
    assert.match(trust.stderr, /save it to a file and trust that file/);
    const demo = await runBin(['demo', '--storage', url, '--port', '0']);
    assert.equal(demo.code, 2);
    assert.match(demo.stderr, /the demo keeps its certificates in a directory/);
  });

  test('a password in a storage URL never reaches the output of a failing command', async () => {
    const port = await freePort();
    const url = `redis://app:hunter2-secret-pw@127.0.0.1:${port}/0?prefix=x:`;
    const result = await runBin(['storage', 'verify', url, '--log-level', 'warn']);
    assert.equal(result.code, 1, 'nothing listens there');
    assert.ok(!`${result.stdout}${result.stderr}`.includes('hunter2-secret-pw'), result.stderr);
    const listed = await runBin(['list', '--storage', url, '--log-format', 'json', '--log-level', 'debug']);
    assert.equal(listed.code, 1);
    assert.ok(!`${listed.stdout}${listed.stderr}`.includes('hunter2-secret-pw'), listed.stderr);
  });
});

