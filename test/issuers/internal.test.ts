import { execFile } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promisify } from 'node:util';
import * as x509 from '@peculiar/x509';
import acme from 'acme-client';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { AbortedError, CertificateInvalidError, InvalidOptionError } from '../../src/errors.js';
import { InternalIssuer, DEFAULT_LEAF_LIFETIME_MS, CLOCK_SKEW_BACKDATE_MS } from '../../src/issuers/internal.js';
import { parseIdentifier } from '../../src/names.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { FileStorage } from '../../src/storage/file.js';
import { MemoryBackend, MemoryStorage } from '../../src/storage/memory.js';
import type { FencedWrite } from '../../src/storage/types.js';

const execFileAsync = promisify(execFile);
const DAY_MS = 24 * 60 * 60 * 1000;

function ids(...names: string[]) {
  return names.map((n) => parseIdentifier(n));
}

function makeCsr(names: string[], keyType: 'ec' | 'rsa' = 'ec'): Promise<{ keyPem: string; csr: Buffer }> {
  return createKeyAndCsr(ids(...names), keyType === 'ec' ? 'ecdsa-p256' : 'rsa2048');
}

/** MemoryStorage that counts writes per key, to see how often a CA was created. */
class CountingStorage extends MemoryStorage {
  readonly writes = new Map<string, number>();
  override async store(key: string, value: Uint8Array): Promise<void> {
    this.writes.set(key, (this.writes.get(key) ?? 0) + 1);
    await super.store(key, value);
  }

  // The CA's writes are fenced by its lock: count those too.
  override async writeFenced(lock: string, writes: readonly FencedWrite[]): Promise<void> {
    await super.writeFenced(lock, writes);
    for (const w of writes) if (!('delete' in w)) this.writes.set(w.key, (this.writes.get(w.key) ?? 0) + 1);
  }
}

function splitChain(chainPem: string): X509Certificate[] {
  return (chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? []).map((p) => new X509Certificate(p));
}

function sanSet(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '').split(', ').sort();
}

describe('InternalIssuer', () => {
  describe('a leaf for localhost, 127.0.0.1 and ::1', () => {
    // Real time: the TLS handshake and openssl check validity against the system clock.
    const clock = new FakeClock(Date.now());
    const storage = new CountingStorage();
    const issuer = new InternalIssuer({ storage, clock });
    let chain: X509Certificate[];
    let chainPem: string;
    let keyPem: string;
    let rootPem: string;
    let dir: string;

    before(async () => {
      const made = await makeCsr(['localhost', '127.0.0.1']);
      keyPem = made.keyPem;
      ({ chainPem } = await issuer.issue({ identifiers: ids('localhost', '127.0.0.1', '::1'), csr: made.csr }));
      chain = splitChain(chainPem);
      rootPem = await issuer.rootCertificatePem();
      dir = await mkdtemp(join(tmpdir(), 'certkeeper-internal-'));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    test('the chain is leaf + intermediate and walks to the root', () => {
      assert.equal(chain.length, 2);
      const [leaf, intermediate] = chain as [X509Certificate, X509Certificate];
      const root = new X509Certificate(rootPem);
      assert.ok(leaf.checkIssued(intermediate) && leaf.verify(intermediate.publicKey), 'leaf signed by intermediate');
      assert.ok(intermediate.checkIssued(root) && intermediate.verify(root.publicKey), 'intermediate signed by root');
      assert.ok(root.checkIssued(root) && root.verify(root.publicKey), 'root self-signed');
      assert.notEqual(intermediate.fingerprint256, root.fingerprint256);
      assert.equal(intermediate.ca, true);
      assert.equal(leaf.ca, false);
    });

    test('SANs are exactly the identifiers; EKU is serverAuth; EC key usage is digitalSignature only', () => {
      const leaf = chain[0]!;
      assert.deepEqual(sanSet(leaf), ['DNS:localhost', 'IP Address:0:0:0:0:0:0:0:1', 'IP Address:127.0.0.1'].sort());
      assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1']);
      const ku = new x509.X509Certificate(leaf.raw).getExtension(x509.KeyUsagesExtension);
      assert.equal(ku?.usages, x509.KeyUsageFlags.digitalSignature);
    });

    test('lifetime is 24 hours by default, backdated one minute, with a 128-bit serial and AKI/SKI', () => {
      const leaf = new x509.X509Certificate(chain[0]!.raw);
      const intermediate = new x509.X509Certificate(chain[1]!.raw);
      const now = Math.floor(clock.now() / 1000) * 1000;
      assert.equal(leaf.notBefore.getTime(), now - CLOCK_SKEW_BACKDATE_MS);
      assert.equal(leaf.notAfter.getTime(), now + DEFAULT_LEAF_LIFETIME_MS);
      assert.equal(leaf.serialNumber.replace(/^00/, '').length, 32, `serial ${leaf.serialNumber}`);
      const aki = leaf.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId;
      const ski = intermediate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
      assert.ok(aki !== undefined && aki === ski);
      assert.ok(leaf.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
    });

    test('a real TLS handshake trusting only the root succeeds for localhost and 127.0.0.1', async () => {
      const server = createServer({ key: keyPem, cert: chainPem }, (socket) => socket.end('ok'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as { port: number };
      try {
        const handshake = (servername: string | undefined): Promise<TLSSocket> =>
          new Promise((resolve, reject) => {
            const socket = connect({ host: '127.0.0.1', port, ca: rootPem, ...(servername ? { servername } : {}) }, () => resolve(socket));
            socket.once('error', reject);
          });
        const byName = await handshake('localhost');
        assert.equal(byName.authorized, true);
        byName.destroy();
        // Without SNI, Node checks the certificate against the IP it connected to.
        const byIp = await handshake(undefined);
        assert.equal(byIp.authorized, true);
        byIp.destroy();
        // And a name not in the SANs is refused.
        await assert.rejects(handshake('example.com'), /does not match|not in the cert's altnames/i);
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });

    test('openssl verify -CAfile root -untrusted intermediate leaf', { skip: skipUnlessInstalled('openssl') }, async () => {
      await writeFile(join(dir, 'root.pem'), rootPem);
      await writeFile(join(dir, 'intermediate.pem'), chain[1]!.toString());
      await writeFile(join(dir, 'leaf.pem'), chain[0]!.toString());
      const { stdout } = await execFileAsync('openssl', [
        'verify', '-purpose', 'sslserver', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'intermediate.pem'), join(dir, 'leaf.pem'),
      ]);
      assert.match(stdout, /leaf\.pem: OK/);
    });

    test('the CA is kept in storage under internal/<name>/', async () => {
      assert.equal(issuer.key, 'internal-local');
      assert.equal(issuer.rootCertificateKey(), 'internal/local/root.crt');
      assert.deepEqual(await storage.list('internal/local', false), [
        'internal/local/intermediate.crt', 'internal/local/intermediate.key', 'internal/local/root.crt', 'internal/local/root.key',
      ]);
      assert.equal((await storage.load('internal/local/root.crt')).toString(), rootPem);
      assert.equal((await storage.load('internal/local/intermediate.crt')).toString(), chain[1]!.toString());
      // Each key is stored together with its certificate (one atomic value).
      const bundle = (await storage.load('internal/local/intermediate.key')).toString();
      assert.match(bundle, /BEGIN PRIVATE KEY[\s\S]+BEGIN CERTIFICATE/);
      assert.ok(new X509Certificate(bundle).checkPrivateKey((await import('node:crypto')).createPrivateKey(bundle)));
    });
  });

  test('wildcards; SANs come from the identifiers, not from the CSR', async () => {
    const issuer = new InternalIssuer({ storage: new CountingStorage(), clock: new FakeClock() });
    const { csr } = await makeCsr(['evil.example', '*.example.test']);
    const { chainPem } = await issuer.issue({ identifiers: ids('*.example.test', 'example.test'), csr });
    const leaf = splitChain(chainPem)[0]!;
    assert.deepEqual(sanSet(leaf), ['DNS:*.example.test', 'DNS:example.test']);
    assert.match(leaf.subject, /CN=\*\.example\.test/);
  });

  test('an RSA key gets keyEncipherment too', async () => {
    const issuer = new InternalIssuer({ storage: new CountingStorage(), clock: new FakeClock() });
    const { csr } = await makeCsr(['rsa.test'], 'rsa');
    const { chainPem } = await issuer.issue({ identifiers: ids('rsa.test'), csr });
    const leaf = new x509.X509Certificate(splitChain(chainPem)[0]!.raw);
    assert.equal(
      leaf.getExtension(x509.KeyUsagesExtension)?.usages,
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
    );
  });

  test('the intermediate is renewed when less than a third of its life remains, under the same root', async () => {
    const clock = new FakeClock();
    const storage = new CountingStorage();
    const issuer = new InternalIssuer({ storage, clock });
    const { csr } = await makeCsr(['localhost']);
    const first = splitChain((await issuer.issue({ identifiers: ids('localhost'), csr })).chainPem);
    const rootPem = await issuer.rootCertificatePem();

    // 4 of 7 days gone: 3 days remain, more than a third; no renewal.
    await clock.advance(4 * DAY_MS);
    const second = splitChain((await issuer.issue({ identifiers: ids('localhost'), csr })).chainPem);
    assert.equal(second[1]!.serialNumber, first[1]!.serialNumber);

    // 6 days gone: 1 day remains; the next issue() renews it.
    await clock.advance(2 * DAY_MS);
    const third = splitChain((await issuer.issue({ identifiers: ids('localhost'), csr })).chainPem);
    const [leaf, intermediate] = third as [X509Certificate, X509Certificate];
    assert.notEqual(intermediate.serialNumber, first[1]!.serialNumber);
    assert.equal(await issuer.rootCertificatePem(), rootPem, 'the root is unchanged');
    const root = new X509Certificate(rootPem);
    assert.ok(intermediate.checkIssued(root) && intermediate.verify(root.publicKey));
    assert.ok(leaf.checkIssued(intermediate) && leaf.verify(intermediate.publicKey));
    assert.equal(new Date(intermediate.validTo).getTime(), Math.floor((clock.now() + 7 * DAY_MS) / 1000) * 1000);
    assert.equal((await storage.load('internal/local/intermediate.crt')).toString(), intermediate.toString());

    // Another process (instance) on the same storage uses the renewed intermediate without making its own.
    const other = new InternalIssuer({ storage, clock });
    const fromOther = splitChain((await other.issue({ identifiers: ids('localhost'), csr })).chainPem);
    assert.equal(fromOther[1]!.serialNumber, intermediate.serialNumber);
    assert.equal(storage.writes.get('internal/local/intermediate.key'), 2);
  });

  test('a leaf never outlives its intermediate', async () => {
    const clock = new FakeClock();
    const issuer = new InternalIssuer({ storage: new CountingStorage(), clock, leafLifetimeMs: 3 * DAY_MS });
    const { csr } = await makeCsr(['localhost']);
    await issuer.issue({ identifiers: ids('localhost'), csr });
    await clock.advance(4.5 * DAY_MS); // 2.5 days of the intermediate remain (> 1/3): not renewed
    const [leaf, intermediate] = splitChain((await issuer.issue({ identifiers: ids('localhost'), csr })).chainPem);
    assert.equal(leaf!.validTo, intermediate!.validTo);
  });

  test('two instances on one storage create one root and one intermediate on concurrent first use', async () => {
    const clock = new FakeClock();
    const storage = new CountingStorage();
    const a = new InternalIssuer({ storage, clock });
    const b = new InternalIssuer({ storage, clock });
    const { csr } = await makeCsr(['localhost']);
    const [ca, cb] = await Promise.all([
      a.issue({ identifiers: ids('localhost'), csr }),
      b.issue({ identifiers: ids('localhost'), csr }),
      a.issue({ identifiers: ids('localhost'), csr }),
    ]);
    assert.equal(storage.writes.get('internal/local/root.key'), 1);
    assert.equal(storage.writes.get('internal/local/intermediate.key'), 1);
    assert.equal(await a.rootCertificatePem(), await b.rootCertificatePem());
    assert.equal(splitChain(ca.chainPem)[1]!.serialNumber, splitChain(cb.chainPem)[1]!.serialNumber);
  });

  test('two processes (storage instances on one backend) agree on one CA', async () => {
    const clock = new FakeClock();
    const backend = new MemoryBackend();
    const a = new InternalIssuer({ storage: new MemoryStorage({ backend }), clock });
    const b = new InternalIssuer({ storage: new MemoryStorage({ backend }), clock });
    const [rootA, rootB] = await Promise.all([a.rootCertificatePem(), b.rootCertificatePem()]);
    assert.equal(rootA, rootB);
  });

  test('with FileStorage, two instances on one directory create one root, and rootCertificateKey() is a file path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'certkeeper-internal-fs-'));
    const one = new FileStorage({ root: dir });
    const two = new FileStorage({ root: dir });
    try {
      const clock = new FakeClock();
      const a = new InternalIssuer({ storage: one, clock });
      const b = new InternalIssuer({ storage: two, clock });
      const [rootA, rootB] = await Promise.all([a.rootCertificatePem(), b.rootCertificatePem()]);
      assert.equal(rootA, rootB);
      assert.equal(await readFile(join(dir, a.rootCertificateKey()), 'utf8'), rootA);
    } finally {
      await one.close();
      await two.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('separate names are separate CAs', async () => {
    const storage = new CountingStorage();
    const clock = new FakeClock();
    const one = new InternalIssuer({ storage, clock });
    const two = new InternalIssuer({ storage, clock, name: 'staging' });
    assert.equal(two.key, 'internal-staging');
    assert.notEqual(await one.rootCertificatePem(), await two.rootCertificatePem());
    assert.ok(await storage.exists('internal/staging/root.crt'));
  });

  test('a CSR with a bad signature is rejected with CertificateInvalidError', async () => {
    const issuer = new InternalIssuer({ storage: new CountingStorage(), clock: new FakeClock() });
    const { csr } = await makeCsr(['localhost']);
    const der = Buffer.from(new x509.Pkcs10CertificateRequest(csr.toString()).rawData);
    const at = der.indexOf('localhost');
    assert.ok(at > 0);
    der[at] = 'L'.charCodeAt(0); // the signed data changes, the signature does not
    await assert.rejects(issuer.issue({ identifiers: ids('localhost'), csr: der }), (error: unknown) => {
      assert.ok(error instanceof CertificateInvalidError);
      assert.equal(error.code, 'ERR_CERTIFICATE_INVALID');
      assert.match(error.message, /signature does not verify/);
      return true;
    });
    await assert.rejects(issuer.issue({ identifiers: ids('localhost'), csr: Buffer.from('not a csr') }), CertificateInvalidError);
  });

  test('a stored root whose key does not match its certificate is refused, not silently replaced', async () => {
    const storage = new CountingStorage();
    const clock = new FakeClock();
    await new InternalIssuer({ storage, clock }).rootCertificatePem();
    const other = new CountingStorage();
    await new InternalIssuer({ storage: other, clock }).rootCertificatePem();
    const ours = (await storage.load('internal/local/root.key')).toString();
    const theirs = (await other.load('internal/local/root.key')).toString();
    const mixed = `${theirs.split('-----BEGIN CERTIFICATE-----')[0]}-----BEGIN CERTIFICATE-----${ours.split('-----BEGIN CERTIFICATE-----')[1]}`;
    await storage.store('internal/local/root.key', Buffer.from(mixed));
    await assert.rejects(new InternalIssuer({ storage, clock }).rootCertificatePem(), /does not match the certificate/);
  });

  test('a broken intermediate is replaced', async () => {
    const storage = new CountingStorage();
    const clock = new FakeClock();
    const rootPem = await new InternalIssuer({ storage, clock }).rootCertificatePem();
    await storage.store('internal/local/intermediate.key', Buffer.from('garbage'));
    const issuer = new InternalIssuer({ storage, clock });
    const { csr } = await makeCsr(['localhost']);
    const [, intermediate] = splitChain((await issuer.issue({ identifiers: ids('localhost'), csr })).chainPem);
    assert.equal(await issuer.rootCertificatePem(), rootPem);
    assert.ok(intermediate!.verify(new X509Certificate(rootPem).publicKey));
    assert.match((await storage.load('internal/local/intermediate.key')).toString(), /BEGIN PRIVATE KEY/);
  });

  test('an intermediate not issued by the stored root (crash between the two writes) is replaced', async () => {
    const clock = new FakeClock();
    const storage = new CountingStorage();
    const rootPem = await new InternalIssuer({ storage, clock }).rootCertificatePem();
    const other = new CountingStorage();
    await new InternalIssuer({ storage: other, clock }).rootCertificatePem();
    const foreign = await other.load('internal/local/intermediate.key');
    await storage.store('internal/local/intermediate.key', foreign);
    await storage.store('internal/local/intermediate.crt', await other.load('internal/local/intermediate.crt'));

    const issuer = new InternalIssuer({ storage, clock });
    const { csr } = await makeCsr(['localhost']);
    const [leaf, intermediate] = splitChain((await issuer.issue({ identifiers: ids('localhost'), csr })).chainPem);
    assert.ok(intermediate!.verify(new X509Certificate(rootPem).publicKey));
    assert.ok(leaf!.verify(intermediate!.publicKey));
    assert.notDeepEqual(await storage.load('internal/local/intermediate.key'), foreign);
  });

  test('a CSR with a weak RSA key is rejected', async () => {
    const issuer = new InternalIssuer({ storage: new CountingStorage(), clock: new FakeClock() });
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const [, csr] = await acme.crypto.createCsr({ commonName: 'localhost' }, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    await assert.rejects(issuer.issue({ identifiers: ids('localhost'), csr }), (e: unknown) => e instanceof CertificateInvalidError && /2048/.test(e.message));
  });

  test('an abort while waiting for the CA lock rejects with AbortedError, and the next call succeeds', async () => {
    const backend = new MemoryBackend();
    const holder = new MemoryStorage({ backend });
    const clock = new FakeClock();
    const issuer = new InternalIssuer({ storage: new MemoryStorage({ backend }), clock });
    const { csr } = await makeCsr(['localhost']);
    await assert.rejects(
      issuer.issue({ identifiers: ids('localhost'), csr, signal: AbortSignal.abort() }),
      (e: unknown) => e instanceof AbortedError,
    );

    await holder.lock('internal_ca_local'); // another process is creating the CA
    const controller = new AbortController();
    const waiting = issuer.issue({ identifiers: ids('localhost'), csr, signal: controller.signal });
    controller.abort();
    await assert.rejects(waiting, (e: unknown) => e instanceof AbortedError);
    await holder.unlock('internal_ca_local');
    const { chainPem } = await issuer.issue({ identifiers: ids('localhost'), csr });
    assert.equal(splitChain(chainPem).length, 2);
  });

  test('options are validated into a frozen config', () => {
    const storage = new CountingStorage();
    const issuer = new InternalIssuer({ storage });
    assert.ok(Object.isFrozen(issuer.config));
    assert.equal(issuer.config.leafLifetimeMs, DEFAULT_LEAF_LIFETIME_MS);
    const invalid = (options: object, option: string) =>
      assert.throws(() => new InternalIssuer({ storage, ...options }), (e: unknown) => e instanceof InvalidOptionError && e.option === option);
    invalid({ name: '../x' }, 'name');
    invalid({ name: 'Upper' }, 'name');
    invalid({ leafLifetimeMs: -1 }, 'leafLifetimeMs');
    invalid({ leafLifetimeMs: 8 * DAY_MS }, 'leafLifetimeMs');
    invalid({ intermediateLifetimeMs: 1.5 }, 'intermediateLifetimeMs');
    invalid({ logger: {} }, 'logger');
    assert.throws(() => new InternalIssuer({} as never), (e: unknown) => e instanceof InvalidOptionError && e.option === 'storage');
  });
});
