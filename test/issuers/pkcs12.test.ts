import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promisify } from 'node:util';
import { CertificateInvalidError, InvalidOptionError } from '../../src/errors.js';
import { InternalIssuer } from '../../src/issuers/internal.js';
import { toPkcs12 } from '../../src/issuers/pkcs12.js';
import { parseIdentifier } from '../../src/names.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { createKeyAndCsr } from '../../src/acme/csr.js';

const execFileAsync = promisify(execFile);
const noOpenssl = skipUnlessInstalled('openssl');

interface Issued {
  keyPem: string;
  chainPem: string;
}

async function issue(issuer: InternalIssuer, keyType: 'ec' | 'rsa'): Promise<Issued> {
  const identifiers = [parseIdentifier('p12.test')];
  const { keyPem, csr } = await createKeyAndCsr(identifiers, keyType === 'ec' ? 'ecdsa-p256' : 'rsa2048');
  const { chainPem } = await issuer.issue({ identifiers, csr });
  return { keyPem, chainPem };
}

function pemBlocks(text: string, label: string): string[] {
  return text.match(new RegExp(`-----BEGIN ${label}-----[\\s\\S]+?-----END ${label}-----`, 'g')) ?? [];
}

function pkcs8(keyPem: string): Buffer {
  return createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
}

describe('toPkcs12', () => {
  const issuer = new InternalIssuer({ storage: new MemoryStorage(), clock: new FakeClock(Date.now()) });
  let dir: string;
  let ec: Issued;
  let rsa: Issued;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-p12-'));
    ec = await issue(issuer, 'ec');
    rsa = await issue(issuer, 'rsa');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function readBack(p12: Buffer, password: string): Promise<string> {
    const file = join(dir, `f-${Math.random().toString(36).slice(2)}.p12`);
    await writeFile(file, p12);
    const { stdout } = await execFileAsync('openssl', ['pkcs12', '-in', file, '-passin', `pass:${password}`, '-nodes']);
    return stdout;
  }

  for (const keyType of ['ec', 'rsa'] as const) {
    test(`${keyType === 'ec' ? 'ECDSA P-256' : 'RSA'} key and chain round-trip through openssl pkcs12`, { skip: noOpenssl }, async () => {
      const { keyPem, chainPem } = keyType === 'ec' ? ec : rsa;
      const p12 = toPkcs12({ certPem: chainPem, keyPem, password: 'correct horse', friendlyName: 'p12.test' });
      const out = await readBack(p12, 'correct horse');

      const keys = pemBlocks(out, 'PRIVATE KEY');
      assert.equal(keys.length, 1);
      assert.ok(pkcs8(keys[0]!).equals(pkcs8(keyPem)), 'same private key');

      const certs = pemBlocks(out, 'CERTIFICATE').map((p) => new X509Certificate(p).fingerprint256).sort();
      const expected = pemBlocks(chainPem, 'CERTIFICATE').map((p) => new X509Certificate(p).fingerprint256).sort();
      assert.equal(certs.length, 2);
      assert.deepEqual(certs, expected);

      // The key and the leaf carry the same localKeyID, and the friendly name.
      const keyIds = [...out.matchAll(/localKeyID: ([0-9A-F ]+)/g)].map((m) => m[1]!.trim());
      assert.equal(keyIds.length, 2);
      assert.equal(keyIds[0], keyIds[1]);
      assert.equal([...out.matchAll(/friendlyName: p12\.test/g)].length, 2);
    });
  }

  test('a wrong password is refused by openssl', { skip: noOpenssl }, async () => {
    const p12 = toPkcs12({ certPem: ec.chainPem, keyPem: ec.keyPem, password: 'right' });
    await assert.rejects(readBack(p12, 'wrong'), /Mac verify error|invalid password|mac verify failure/i);
  });

  test('a non-ASCII password works (UTF-8 for PBES2, BMPString for the MAC)', { skip: noOpenssl }, async () => {
    const password = 'pässwörd-✓';
    const p12 = toPkcs12({ certPem: ec.chainPem, keyPem: ec.keyPem, password });
    const out = await readBack(p12, password);
    assert.ok(pkcs8(pemBlocks(out, 'PRIVATE KEY')[0]!).equals(pkcs8(ec.keyPem)));
  });

  test('node:tls loads the file as a pfx', () => {
    const p12 = toPkcs12({ certPem: ec.chainPem, keyPem: ec.keyPem, password: 'pw' });
    assert.doesNotThrow(() => createSecureContext({ pfx: p12, passphrase: 'pw' }));
    assert.throws(() => createSecureContext({ pfx: p12, passphrase: 'nope' }), /mac verify failure/i);
  });

  test('a key that does not match the leaf is rejected; bad options are typed errors', () => {
    assert.throws(() => toPkcs12({ certPem: ec.chainPem, keyPem: rsa.keyPem, password: 'pw' }), CertificateInvalidError);
    assert.throws(() => toPkcs12({ certPem: ec.chainPem, keyPem: 'nope', password: 'pw' }), CertificateInvalidError);
    const invalid = (options: object, option: string) =>
      assert.throws(
        () => toPkcs12({ certPem: ec.chainPem, keyPem: ec.keyPem, password: 'pw', ...options }),
        (e: unknown) => e instanceof InvalidOptionError && e.option === option,
      );
    invalid({ password: '' }, 'password');
    invalid({ certPem: 'no certificate here' }, 'certPem');
    invalid({ iterations: 10 }, 'iterations');
    invalid({ friendlyName: '' }, 'friendlyName');
  });
});
