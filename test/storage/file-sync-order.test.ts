/**
 * What a power loss could leave of a certificate set written to FileStorage: a rename is durable only once its
 * folder is synced, so the syncs are the points a crash can cut at. The `.pending` copy must be synced before any
 * part lands, and the three parts (one run, one folder sync) before `.pending` is removed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { buildCertificateMeta, saveCertificateSet, type CertificateSet } from '../../src/storage/certificates.js';
import { directorySyncHooks } from '../../src/storage/file-safety.js';
import { FileStorage } from '../../src/storage/file.js';
import { certificateKeys, certificateLockName } from '../../src/storage/layout.js';
import { selfSignedCertificate, type TestCertificate } from '../helpers/certs.js';

const ISSUER = 'sync-order.test-directory';
const NAME = 'www.sync-order.test';
const LOCK = certificateLockName(NAME);

interface SyncSeen {
  files: string[];
  key: string | undefined;
}

for (const encrypted of [false, true]) describe(`FileStorage syncs a certificate set in crash-safe order${encrypted ? ' (keys encrypted at rest)' : ''}`, () => {
  let root: string;
  let storage: FileStorage;
  let folder: string;
  let first: TestCertificate;
  let second: TestCertificate;
  const setOf = (pair: TestCertificate): CertificateSet => ({ ...pair, meta: buildCertificateMeta({ ...pair, issuerKey: ISSUER, names: [NAME] }) });

  before(async () => {
    [first, second] = await Promise.all([selfSignedCertificate([NAME]), selfSignedCertificate([NAME])]);
    root = await mkdtemp(join(tmpdir(), 'certkeeper-sync-order-'));
    storage = new FileStorage({ root, ...(encrypted ? { encryptionKey: randomBytes(32) } : {}) });
    folder = join(root, ...certificateKeys(ISSUER, NAME).prefix.split('/'));
  });
  afterEach(() => {
    directorySyncHooks.beforeSync = undefined;
  });
  after(async () => {
    await storage.close();
    await rm(root, { recursive: true, force: true });
  });

  /** Saves under the lock and records, at each sync of the set's folder, which files it holds and which key is there. */
  async function saveRecording(pair: TestCertificate): Promise<SyncSeen[]> {
    const seen: SyncSeen[] = [];
    const keyFile = join(folder, `${NAME}.key`);
    directorySyncHooks.beforeSync = (dir) => {
      if (dir !== folder) return;
      const files = readdirSync(dir).filter((f) => !f.startsWith('.tmp-')).sort();
      seen.push({ files, key: files.includes(`${NAME}.key`) ? readFileSync(keyFile).toString('base64') : undefined });
    };
    await storage.lock(LOCK);
    try {
      await saveCertificateSet(storage, setOf(pair), { lock: LOCK });
    } finally {
      directorySyncHooks.beforeSync = undefined;
      await storage.unlock(LOCK);
    }
    return seen;
  }

  it('a first set: `.pending` alone, then the three parts in one sync', async () => {
    const seen = await saveRecording(first);
    assert.deepEqual(seen.map((s) => s.files), [[`${NAME}.pending`], [`${NAME}.crt`, `${NAME}.json`, `${NAME}.key`, `${NAME}.pending`].sort()]);
    assert.deepEqual(readdirSync(folder).sort(), [`${NAME}.crt`, `${NAME}.json`, `${NAME}.key`]);
  });

  it('a replacing set: the old parts stay until `.pending` is synced, the new ones are synced before it goes', async () => {
    const firstKeyFile = readFileSync(join(folder, `${NAME}.key`)).toString('base64');
    assert.notEqual(first.keyPem, second.keyPem);
    const seen = await saveRecording(second);
    assert.equal(seen.length, 2);
    assert.equal(seen[0]?.key, firstKeyFile, 'at the first sync the old key is still in place (a crash there rolls `.pending` forward)');
    assert.ok(seen[0]?.files.includes(`${NAME}.pending`));
    assert.equal(seen[1]?.key, readFileSync(join(folder, `${NAME}.key`)).toString('base64'), 'at the second sync the new parts are in place, `.pending` still beside them');
    assert.equal((await storage.load(certificateKeys(ISSUER, NAME).key)).toString(), second.keyPem);
    assert.ok(seen[1]?.files.includes(`${NAME}.pending`));
    assert.deepEqual(readdirSync(folder).sort(), [`${NAME}.crt`, `${NAME}.json`, `${NAME}.key`]);
  });
});

describe('FileStorage store(): durable by default, short-lived values unsynced', () => {
  let root: string;
  let storage: FileStorage;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'certkeeper-sync-durable-'));
    storage = new FileStorage({ root });
  });
  afterEach(() => {
    directorySyncHooks.beforeSync = undefined;
  });
  after(async () => {
    await storage.close();
    await rm(root, { recursive: true, force: true });
  });

  it('a value is synced into its folder; `durable: false` is written the same, without a sync', async () => {
    const synced: string[] = [];
    directorySyncHooks.beforeSync = (dir) => synced.push(dir);
    await storage.store('kept/value.json', Buffer.from('kept'));
    assert.deepEqual(synced, [join(root, 'kept')]);
    await storage.store('brief/value.json', Buffer.from('brief'), { durable: false });
    assert.deepEqual(synced, [join(root, 'kept')], 'no folder synced for the short-lived value');
    assert.equal((await storage.load('brief/value.json')).toString(), 'brief');
    assert.deepEqual(readdirSync(join(root, 'brief')), ['value.json'], 'renamed into place, no temp file left');
  });
});
