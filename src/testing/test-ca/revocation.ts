/**
 * revokeCert (RFC 8555 §7.6), answered by the test CA itself because the
 * certificates it re-issued are not Pebble's, and the CRL that publishes
 * the revocations, signed by Pebble's intermediate.
 */
import { X509Certificate } from 'node:crypto';
import type { Clock } from '../../clock.js';
import type { Logger } from '../../logger.js';
import type { Answer, ProblemAnswer } from './answer.js';
import { accountPathOf, keyOfJwk, sameKey, signatureVerifies, type DecodedJws } from './jws.js';
import type { Ledger } from './ledger.js';
import { buildCrl, certIdOfInput, type Issuer } from './pki.js';

/** RFC 5280 §5.3.1 reason codes; 7 is unused. */
const VALID_REASONS = new Set([0, 1, 2, 3, 4, 5, 6, 8, 9, 10]);

export interface RevokeContext {
  ledger: Ledger;
  options: { clock: Clock };
  logger: Logger;
  problem: ProblemAnswer;
  nonce: () => Promise<string | undefined>;
}

export async function handleRevokeCert(ctx: RevokeContext, jws: DecodedJws): Promise<Answer> {
  const problem = ctx.problem;
  const payload = (jws.payload ?? {}) as Record<string, unknown>;
  const encoded = payload['certificate'];
  if (typeof encoded !== 'string') return problem(400, 'malformed', 'revokeCert needs a certificate');
  const reason = payload['reason'] ?? 0;
  if (typeof reason !== 'number' || !VALID_REASONS.has(reason)) return problem(400, 'badRevocationReason', `reason ${String(reason)} is not allowed`);
  let certificate: X509Certificate;
  let certId: string;
  try {
    certificate = new X509Certificate(Buffer.from(encoded, 'base64url'));
    certId = certIdOfInput(certificate.toString());
  } catch {
    return problem(400, 'malformed', 'the certificate does not parse');
  }
  const record = ctx.ledger.find(certId);
  if (!record || !new X509Certificate(record.certificatePem).raw.equals(certificate.raw)) {
    return problem(404, 'malformed', 'this CA did not issue that certificate');
  }
  if (!authorized(ctx.ledger, jws, record.accountPath, certificate)) {
    return problem(403, 'unauthorized', 'neither the account that ordered the certificate nor its key signed the request');
  }
  if (record.revoked) return problem(400, 'alreadyRevoked', 'the certificate is already revoked');
  ctx.ledger.revoke(record, ctx.options.clock.now(), reason);
  ctx.logger.info({ certId, reason }, 'test CA revoked a certificate');
  const nonce = await ctx.nonce().catch(() => undefined);
  return { status: 200, headers: nonce ? { 'replay-nonce': nonce } : {}, body: '' };
}

/** The ordering account (kid) or the certificate's own key (jwk) must have signed the request. */
function authorized(ledger: Ledger, jws: DecodedJws, orderAccount: string | undefined, certificate: X509Certificate): boolean {
  const account = accountPathOf(jws);
  if (account !== undefined) {
    const key = ledger.accounts.get(account);
    return key !== undefined && account === orderAccount && signatureVerifies(jws, key);
  }
  const jwk = keyOfJwk(jws.protectedHeader['jwk']);
  return jwk !== undefined && sameKey(jwk, certificate.publicKey) && signatureVerifies(jws, jwk);
}

/** The current CRL (DER), rebuilt only after a revocation or once its nextUpdate has passed. */
export class CrlPublisher {
  readonly #issuer: Issuer;
  readonly #ledger: Ledger;
  readonly #lifetimeMs: number;
  #number = 0;
  #current: { revision: number; nextUpdate: number; der: Promise<Buffer> } | undefined;

  constructor(issuer: Issuer, ledger: Ledger, lifetimeMs: number) {
    this.#issuer = issuer;
    this.#ledger = ledger;
    this.#lifetimeMs = lifetimeMs;
  }

  crl(now: number): Promise<Buffer> {
    const current = this.#current;
    if (current && current.revision === this.#ledger.revision && now < current.nextUpdate) return current.der;
    const thisUpdate = Math.floor(now / 1000) * 1000;
    const nextUpdate = thisUpdate + this.#lifetimeMs;
    const entries = this.#ledger
      .certificates()
      .filter((c) => c.revoked)
      .map((c) => ({ serialNumber: c.serialNumber, revokedAt: c.revoked?.at ?? new Date(now), reason: c.revoked?.reason ?? 0 }));
    const der = buildCrl(this.#issuer, { thisUpdate, nextUpdate, number: ++this.#number, entries });
    this.#current = { revision: this.#ledger.revision, nextUpdate, der };
    der.catch(() => {
      if (this.#current?.der === der) this.#current = undefined;
    });
    return der;
  }
}
