/** Certificate keys and CSRs. The key is always fresh and never the account key. */
import { generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import acme from 'acme-client';
import { InvalidOptionError } from '../errors.js';
import { KEY_TYPES, type KeyType } from '../issuers/types.js';
import type { Identifier } from '../names.js';

const generateKeyPairAsync = promisify(generateKeyPair);

export const DEFAULT_KEY_TYPE: KeyType = 'ecdsa-p256';

export interface KeyAndCsr {
  /** PKCS#8 PEM private key of the certificate. */
  keyPem: string;
  /** PEM certificate signing request. */
  csr: Buffer;
}

/** A new private key of the given type, PKCS#8 PEM. */
export async function createPrivateKeyPem(keyType: KeyType = DEFAULT_KEY_TYPE): Promise<string> {
  let privateKey: KeyObject;
  switch (keyType) {
    case 'ecdsa-p256':
      ({ privateKey } = await generateKeyPairAsync('ec', { namedCurve: 'P-256' }));
      break;
    case 'ecdsa-p384':
      ({ privateKey } = await generateKeyPairAsync('ec', { namedCurve: 'P-384' }));
      break;
    case 'rsa2048':
    case 'rsa3072':
    case 'rsa4096':
      ({ privateKey } = await generateKeyPairAsync('rsa', { modulusLength: Number(keyType.slice(3)) }));
      break;
    default:
      throw new InvalidOptionError('keyType', `must be one of ${KEY_TYPES.join(', ')}`);
  }
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/**
 * A fresh key and a CSR for the identifiers (the first is the common name when
 * it fits in one: a DNS name of at most 64 characters).
 */
export async function createKeyAndCsr(identifiers: readonly Identifier[], keyType: KeyType = DEFAULT_KEY_TYPE): Promise<KeyAndCsr> {
  if (identifiers.length === 0) throw new InvalidOptionError('identifiers', 'must name at least one identifier');
  if (!KEY_TYPES.includes(keyType)) throw new InvalidOptionError('keyType', `must be one of ${KEY_TYPES.join(', ')}`);
  const keyPem = await createPrivateKeyPem(keyType);
  const first = identifiers[0] as Identifier;
  const commonName = first.type === 'dns' && first.value.length <= 64 ? first.value : undefined;
  const [, csr] = await acme.crypto.createCsr(
    { altNames: identifiers.map((id) => id.value), ...(commonName ? { commonName } : {}) },
    keyPem,
  );
  return { keyPem, csr };
}
