/** Assertions and fixtures shared by the storage conformance cases. */
import assert from 'node:assert/strict';
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

/** Generous bound for a lock wait that should succeed, so a broken lock fails instead of hanging. */
export const LOCK_WAIT_LIMIT_MS = 20_000;

export async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assertCode(err, code, 'operation');
    return true;
  });
}

export function assertCode(err: unknown, code: string, what: string): void {
  assertCodeIn(err, [code], what);
}

export function assertCodeIn(err: unknown, codes: string[], what: string): void {
  const actual = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  assert.ok(
    typeof actual === 'string' && codes.includes(actual),
    `${what}: expected an error with code ${codes.join(' or ')}, got ${String(actual)} (${err instanceof Error ? err.message : String(err)})`,
  );
}

const TEST_KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** A throwaway self-signed certificate and its key, for the certificate-set case. */
export async function selfSignedPair(names: string[]): Promise<{ certPem: string; keyPem: string }> {
  const crypto = webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0];
  const keys = await webcrypto.subtle.generateKey(TEST_KEY_ALGORITHM, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: `01${randomBytes(8).toString('hex')}`,
      name: `CN=${names[0] ?? 'test'}`,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 86_400_000),
      signingAlgorithm: TEST_KEY_ALGORITHM,
      keys,
      extensions: [new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: 'dns' as const, value })))],
    },
    crypto,
  );
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: `${cert.toString('pem')}\n`, keyPem: `${x509.PemConverter.encode(pkcs8, 'PRIVATE KEY')}\n` };
}
