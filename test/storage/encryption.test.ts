import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { InvalidOptionError, StorageError } from '../../src/errors.js';
import {
  createKeyEncryptor,
  encryptPrivateKeys,
  isEncryptedValue,
  isSecretStorageKey,
} from '../../src/storage/encryption.js';
import { buildCertificateMeta, loadCertificateSet, saveCertificateSet } from '../../src/storage/certificates.js';
import { FileStorage } from '../../src/storage/file.js';
import { MemoryBackend, MemoryStorage } from '../../src/storage/memory.js';
import { hasLockLeaseCheck, hasTryLock, type Storage } from '../../src/storage/types.js';
import { runStorageConformance } from '../../src/testing/conformance.js';
import { createTestLeaf } from '../helpers/tls-certs.js';

const privateKeyPem = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  .privateKey.export({ format: 'pem', type: 'pkcs8' })
  .toString();
const KEY = randomBytes(32);
const CERT_KEY = 'certificates/acme-v02/example.com/example.com.key';

describe('createKeyEncryptor', () => {
  it('round-trips bytes and never leaves the plaintext in the output', () => {
    const enc = createKeyEncryptor(KEY);
    const sealed = enc.encrypt(Buffer.from(privateKeyPem));
    assert.ok(isEncryptedValue(sealed));
    assert.ok(!sealed.toString('latin1').includes('PRIVATE KEY'));
    assert.equal(enc.decrypt(sealed, CERT_KEY).toString(), privateKeyPem);
  });

  it('uses a fresh IV per encryption', () => {
    const enc = createKeyEncryptor(KEY);
    const a = enc.encrypt(Buffer.from('same'));
    const b = enc.encrypt(Buffer.from('same'));
    assert.notDeepEqual(a, b);
  });

  it('accepts the same key as Buffer, base64, base64url and hex', () => {
    const sealed = createKeyEncryptor(KEY).encrypt(Buffer.from('x'));
    for (const form of [KEY.toString('base64'), KEY.toString('base64url'), KEY.toString('hex'), new Uint8Array(KEY)]) {
      assert.equal(createKeyEncryptor(form).decrypt(sealed, 'a.key').toString(), 'x');
    }
  });

  it('rejects keys that are not 32 bytes, without echoing them', () => {
    for (const bad of [randomBytes(16), 'c2hvcnQ=', 'not base64 at all!', '', 42 as unknown as string]) {
      assert.throws(
        () => createKeyEncryptor(bad),
        (error: unknown) => {
          assert.ok(error instanceof InvalidOptionError);
          assert.equal(error.option, 'encryptionKey');
          if (typeof bad === 'string' && bad !== '') assert.ok(!error.message.includes(bad));
          return true;
        },
      );
    }
  });

  it('reports a wrong key as a StorageError naming the storage key and not the key material', () => {
    const sealed = createKeyEncryptor(KEY).encrypt(Buffer.from(privateKeyPem));
    const other = randomBytes(32);
    assert.throws(
      () => createKeyEncryptor(other).decrypt(sealed, CERT_KEY),
      (error: unknown) => {
        assert.ok(error instanceof StorageError);
        assert.equal(error.code, 'ERR_STORAGE');
        assert.match(error.message, /different encryptionKey/);
        assert.ok(error.message.includes(CERT_KEY));
        for (const secret of [KEY, other]) {
          assert.ok(!error.message.includes(secret.toString('base64')));
          assert.ok(!error.message.includes(secret.toString('hex')));
        }
        return true;
      },
    );
  });

  it('detects a modified ciphertext', () => {
    const enc = createKeyEncryptor(KEY);
    const sealed = enc.encrypt(Buffer.from(privateKeyPem));
    sealed.writeUInt8(sealed.readUInt8(sealed.length - 1) ^ 0x01, sealed.length - 1);
    assert.throws(() => enc.decrypt(sealed, CERT_KEY), (error: unknown) => {
      assert.ok(error instanceof StorageError);
      assert.match(error.message, /authentication failed/);
      return true;
    });
  });

  it('detects a modified header', () => {
    const enc = createKeyEncryptor(KEY);
    const sealed = enc.encrypt(Buffer.from('secret'));
    sealed[5] = 2; // version byte
    assert.throws(() => enc.decrypt(sealed, CERT_KEY), /unsupported encryption format version 2/);
  });

  it('encrypts only private keys and pending bundles', () => {
    assert.ok(isSecretStorageKey(CERT_KEY));
    assert.ok(isSecretStorageKey('certificates/x/example.com/example.com.pending'));
    assert.ok(isSecretStorageKey('acme/x/users/me@example.com/me@example.com.key'));
    assert.ok(!isSecretStorageKey('certificates/x/example.com/example.com.crt'));
    assert.ok(!isSecretStorageKey('certificates/x/example.com/example.com.json'));
    const enc = createKeyEncryptor(KEY);
    const cert = Buffer.from('-----BEGIN CERTIFICATE-----');
    assert.equal(enc.seal('a/b.crt', cert), cert);
    assert.ok(isEncryptedValue(enc.seal('a/b.pending', cert)));
  });
});

describe('encryptPrivateKeys', () => {
  it('stores secrets encrypted in the backend and loads them decrypted', async () => {
    const raw = new MemoryStorage();
    const storage = encryptPrivateKeys(raw, KEY);
    await storage.store(CERT_KEY, Buffer.from(privateKeyPem));
    await storage.store('certificates/acme-v02/example.com/example.com.crt', Buffer.from('CERT'));
    const stored = await raw.load(CERT_KEY);
    assert.ok(!stored.toString('latin1').includes('PRIVATE KEY'));
    assert.ok(isEncryptedValue(stored));
    assert.equal((await storage.load(CERT_KEY)).toString(), privateKeyPem);
    assert.equal((await raw.load('certificates/acme-v02/example.com/example.com.crt')).toString(), 'CERT');
    assert.deepEqual(await storage.list('certificates/acme-v02/example.com', false), [
      'certificates/acme-v02/example.com/example.com.crt',
      'certificates/acme-v02/example.com/example.com.key',
    ]);
  });

  it('fails to load with another key, with a typed error', async () => {
    const raw = new MemoryStorage();
    await encryptPrivateKeys(raw, KEY).store(CERT_KEY, Buffer.from(privateKeyPem));
    await assert.rejects(encryptPrivateKeys(raw, randomBytes(32)).load(CERT_KEY), (error: unknown) => {
      assert.ok(error instanceof StorageError);
      assert.match(error.message, /different encryptionKey/);
      return true;
    });
  });

  it('reads secrets stored before encryption was enabled unless allowPlaintext is false', async () => {
    const raw = new MemoryStorage();
    await raw.store(CERT_KEY, Buffer.from(privateKeyPem));
    assert.equal((await encryptPrivateKeys(raw, KEY).load(CERT_KEY)).toString(), privateKeyPem);
    await assert.rejects(encryptPrivateKeys(raw, KEY, { allowPlaintext: false }).load(CERT_KEY), StorageError);
  });

  it('forwards lock methods and only the optional capabilities the backend has', async () => {
    const backend = new MemoryBackend();
    const storage = encryptPrivateKeys(new MemoryStorage({ backend }), KEY);
    const other = new MemoryStorage({ backend });
    assert.ok(hasTryLock(storage) && hasLockLeaseCheck(storage));
    assert.equal(await storage.tryLock('l'), true);
    await storage.assertLockHeld('l');
    assert.equal(await other.tryLock('l'), false);
    await storage.unlock('l');
    assert.equal(await other.tryLock('l'), true);

    const minimal: Storage = {
      store: async () => {},
      load: async () => Buffer.alloc(0),
      delete: async () => {},
      exists: async () => false,
      list: async () => [],
      stat: async (key) => ({ key, modified: new Date(0), size: 0, isTerminal: true }),
      lock: async () => {},
      unlock: async () => {},
    };
    const wrapped = encryptPrivateKeys(minimal, KEY);
    assert.equal(hasTryLock(wrapped), false);
    assert.equal(hasLockLeaseCheck(wrapped), false);
    assert.equal(wrapped.close, undefined);
  });
});

describe('encryptPrivateKeys over FileStorage', () => {
  const roots: string[] = [];
  const newRoot = async (): Promise<string> => {
    const root = await mkdtemp(join(tmpdir(), 'certkeeper-enc-'));
    roots.push(root);
    return root;
  };
  after(async () => {
    for (const root of roots) await rm(root, { recursive: true, force: true });
  });

  it('leaves no private key in plaintext on disk, in the set or in its pending bundle', async () => {
    const root = await newRoot();
    const file = new FileStorage({ root });
    // Records what reaches the disk for the write-ahead bundle, which saveCertificateSet deletes at the end.
    const pendingWrites: Buffer[] = [];
    const spy: Storage = Object.assign(Object.create(null) as Storage, {
      store: async (key: string, value: Uint8Array) => {
        if (key.endsWith('.pending')) pendingWrites.push(Buffer.from(value));
        await file.store(key, value);
      },
      load: (key: string) => file.load(key),
      delete: (key: string) => file.delete(key),
      exists: (key: string) => file.exists(key),
      list: (prefix: string, recursive: boolean) => file.list(prefix, recursive),
      stat: (key: string) => file.stat(key),
      lock: (name: string) => file.lock(name),
      unlock: (name: string) => file.unlock(name),
    });
    const storage = encryptPrivateKeys(spy, KEY);
    try {
      const leaf = await createTestLeaf(undefined, { names: ['enc.example.test'] });
      const meta = buildCertificateMeta({ certPem: leaf.chainPem, keyPem: leaf.keyPem, issuerKey: 'test-ca' });
      await saveCertificateSet(storage, { certPem: leaf.chainPem, keyPem: leaf.keyPem, meta });

      assert.equal(pendingWrites.length, 1);
      assert.ok(isEncryptedValue(pendingWrites[0]!));
      assert.ok(!pendingWrites[0]!.toString('latin1').includes('PRIVATE KEY'));

      const files = (await readdir(root, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
      const keyFiles = files.filter((e) => e.name.endsWith('.key'));
      assert.equal(keyFiles.length, 1);
      for (const entry of files) {
        const raw = await readFile(join(entry.parentPath, entry.name));
        assert.ok(!raw.toString('latin1').includes('PRIVATE KEY'), `${entry.name} holds a plaintext private key`);
      }
      const crt = files.find((e) => e.name.endsWith('.crt'))!;
      assert.match(await readFile(join(crt.parentPath, crt.name), 'utf8'), /BEGIN CERTIFICATE/);

      const loaded = await loadCertificateSet(storage, 'test-ca', 'enc.example.test');
      assert.equal(loaded.keyPem, leaf.keyPem);
      await assert.rejects(loadCertificateSet(encryptPrivateKeys(file, randomBytes(32)), 'test-ca', 'enc.example.test'), StorageError);
    } finally {
      await file.close();
    }
  });

  const conformanceRoot = mkdtemp(join(tmpdir(), 'certkeeper-enc-conf-'));
  after(async () => rm(await conformanceRoot, { recursive: true, force: true }));
  // The wrapper is run through the suite over Redis (storage-adapters/redis); here FileStorage's own encryptionKey option.
  runStorageConformance({
    name: 'FileStorage with encryptionKey',
    createStorage: async () => new FileStorage({ root: await conformanceRoot, lockStaleMs: 2_000, encryptionKey: KEY }),
    staleLockMs: 2_000,
    abandonLock: async (storage, name) => (storage as FileStorage).abandonLock(name),
  });
});

describe('FileStorage encryptionKey option', () => {
  it('stores private keys encrypted on disk, loads them back, and refuses a wrong key', async () => {
    const root = await mkdtemp(join(tmpdir(), 'certkeeper-file-enc-'));
    const key = randomBytes(32).toString('base64');
    const storage = new FileStorage({ root, encryptionKey: key });
    try {
      assert.ok(!JSON.stringify(storage.options).includes(key), 'the key is not kept in the public options');
      const leaf = await createTestLeaf(undefined, { names: ['fileenc.example.test'] });
      const meta = buildCertificateMeta({ certPem: leaf.chainPem, keyPem: leaf.keyPem, issuerKey: 'test-ca' });
      await saveCertificateSet(storage, { certPem: leaf.chainPem, keyPem: leaf.keyPem, meta });
      const files = (await readdir(root, { recursive: true, withFileTypes: true })).filter((e) => e.isFile() && !e.parentPath.includes('rw_test'));
      const keyFile = files.find((e) => e.name.endsWith('.key'));
      assert.ok(keyFile, 'a .key file was written');
      const raw = await readFile(join(keyFile.parentPath, keyFile.name));
      assert.ok(isEncryptedValue(raw));
      for (const entry of files) {
        assert.ok(!(await readFile(join(entry.parentPath, entry.name), 'latin1')).includes('PRIVATE KEY'), `${entry.name} holds a plaintext key`);
      }
      assert.equal((await loadCertificateSet(storage, 'test-ca', 'fileenc.example.test')).keyPem, leaf.keyPem);
      const wrong = new FileStorage({ root, encryptionKey: randomBytes(32) });
      await assert.rejects(loadCertificateSet(wrong, 'test-ca', 'fileenc.example.test'), StorageError);
      await wrong.close();
    } finally {
      await storage.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
