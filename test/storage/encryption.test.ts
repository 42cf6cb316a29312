import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { InvalidOptionError, StorageError } from '../../src/errors.js';
import {
  createKeyEncryptor,
  encryptPrivateKeys,
  isEncryptedValue,
  isSecretStorageKey,
} from '../../src/storage/encryption.js';
import { MemoryBackend, MemoryStorage } from '../../src/storage/memory.js';
import { hasLockLeaseCheck, hasTryLock, type Storage } from '../../src/storage/types.js';

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
    sealed[sealed.length - 1] ^= 0x01;
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
