/**
 * OCSP answers (RFC 6960) for the certificates the test CA issued, signed by
 * the issuing intermediate itself (no delegated responder): good, revoked
 * with time and reason, or unknown. Only for CAs that still run OCSP; Let's
 * Encrypt turned its responders off in 2025, so it is off by default.
 */
import { createHash, webcrypto } from 'node:crypto';
import type { Clock } from '../../clock.js';
import {
  bitString,
  children,
  ecdsaSignatureToDer,
  enumerated,
  explicit,
  generalizedTime,
  objectIdentifier,
  octetString,
  oidText,
  readTlv,
  sequence,
  tlv,
  type Tlv,
} from '../../revocation/der.js';
import type { Ledger } from './ledger.js';
import type { Issuer } from './pki.js';

const OID_OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1';
const OID_OCSP_NONCE = '1.3.6.1.5.5.7.48.1.2';
const HASH_BY_OID: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};
const MALFORMED_REQUEST = 1;
const INTERNAL_ERROR = 2;

interface RequestedCert {
  /** The request's CertID, echoed as is. */
  certIdDer: Buffer;
  hash: string | undefined;
  issuerNameHash: Buffer;
  issuerKeyHash: Buffer;
  serial: bigint;
}

export class OcspResponder {
  readonly #issuer: Issuer;
  readonly #ledger: Ledger;
  readonly #clock: Clock;
  readonly #lifetimeMs: number;
  readonly #issuerName: Buffer;
  readonly #issuerKey: Buffer;

  constructor(issuer: Issuer, ledger: Ledger, clock: Clock, lifetimeMs: number) {
    this.#issuer = issuer;
    this.#ledger = ledger;
    this.#clock = clock;
    this.#lifetimeMs = lifetimeMs;
    this.#issuerName = Buffer.from(issuer.certificate.subjectName.toArrayBuffer());
    // The key hash covers the subjectPublicKey BIT STRING's value, without its unused-bits byte.
    const spki = children(readTlv(Buffer.from(issuer.certificate.publicKey.rawData)).content);
    this.#issuerKey = (spki[1] as Tlv).content.subarray(1);
  }

  /** The DER OCSPResponse for a DER OCSPRequest; a malformed request gets the malformedRequest status. */
  async respond(requestDer: Buffer): Promise<Buffer> {
    let request: { certs: RequestedCert[]; nonce: Buffer | undefined };
    try {
      request = parseRequest(requestDer);
    } catch {
      return sequence(enumerated(MALFORMED_REQUEST));
    }
    try {
      return await this.#sign(request.certs, request.nonce);
    } catch {
      return sequence(enumerated(INTERNAL_ERROR));
    }
  }

  async #sign(certs: RequestedCert[], nonce: Buffer | undefined): Promise<Buffer> {
    const now = this.#clock.now();
    const keyHash = createHash('sha1').update(this.#issuerKey).digest();
    const tbs = sequence(
      explicit(2, octetString(keyHash)), // responderID byKey
      generalizedTime(now),
      sequence(...certs.map((cert) => this.#single(cert, now))),
      ...(nonce ? [explicit(1, sequence(nonce))] : []),
    );
    const raw = Buffer.from(await webcrypto.subtle.sign(this.#issuer.algorithm, this.#issuer.signingKey, tbs));
    const ec = this.#issuer.algorithm.name === 'ECDSA';
    const algorithm = ec ? sequence(objectIdentifier('1.2.840.10045.4.3.2')) : sequence(objectIdentifier('1.2.840.113549.1.1.11'), tlv(0x05));
    const basic = sequence(tbs, algorithm, bitString(ec ? ecdsaSignatureToDer(raw) : raw));
    return sequence(enumerated(0), explicit(0, sequence(objectIdentifier(OID_OCSP_BASIC), octetString(basic))));
  }

  #single(cert: RequestedCert, now: number): Buffer {
    const ours =
      cert.hash !== undefined &&
      createHash(cert.hash).update(this.#issuerName).digest().equals(cert.issuerNameHash) &&
      createHash(cert.hash).update(this.#issuerKey).digest().equals(cert.issuerKeyHash);
    const record = ours ? this.#ledger.certificates().find((c) => BigInt(`0x${c.serialNumber}`) === cert.serial) : undefined;
    let status: Buffer;
    if (!record) status = tlv(0x82); // unknown [2] IMPLICIT NULL
    else if (record.revoked) status = tlv(0xa1, generalizedTime(record.revoked.at.getTime()), explicit(0, enumerated(record.revoked.reason)));
    else status = tlv(0x80); // good [0] IMPLICIT NULL
    return sequence(cert.certIdDer, status, generalizedTime(now), explicit(0, generalizedTime(now + this.#lifetimeMs)));
  }
}

function parseRequest(der: Buffer): { certs: RequestedCert[]; nonce: Buffer | undefined } {
  const outer = readTlv(der);
  if (outer.tag !== 0x30) throw new Error('not an OCSPRequest');
  const tbs = children(outer.content)[0];
  if (tbs?.tag !== 0x30) throw new Error('no TBSRequest');
  const parts = children(tbs.content);
  const list = parts.find((p) => p.tag === 0x30);
  if (!list) throw new Error('no requestList');
  const certs = children(list.content).map((req) => {
    const certId = children(req.content)[0];
    if (certId?.tag !== 0x30) throw new Error('no CertID');
    const [algorithm, nameHash, keyHash, serial] = children(certId.content);
    if (!algorithm || nameHash?.tag !== 0x04 || keyHash?.tag !== 0x04 || serial?.tag !== 0x02) throw new Error('bad CertID');
    const oid = children(algorithm.content)[0];
    return {
      certIdDer: certId.der,
      hash: oid ? HASH_BY_OID[oidText(oid.content)] : undefined,
      issuerNameHash: nameHash.content,
      issuerKeyHash: keyHash.content,
      serial: BigInt(`0x${serial.content.toString('hex') || '0'}`),
    };
  });
  if (certs.length === 0) throw new Error('empty requestList');
  // Echo the nonce extension, so clients that check replay see their nonce back.
  const extensions = parts.find((p) => p.tag === 0xa2);
  const wrapped = extensions ? children(extensions.content)[0] : undefined;
  const nonce = wrapped ? children(wrapped.content).find((ext) => oidText(children(ext.content)[0]?.content ?? Buffer.alloc(0)) === OID_OCSP_NONCE) : undefined;
  return { certs, nonce: nonce?.der };
}
