/**
 * Issuing under the certificate lock: makes a key and CSR, asks each issuer
 * in turn (paced by its rate limiter), checks what came back, and stores the
 * first certificate obtained. Serving it is the caller's business.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import { createKeyAndCsr } from '../acme/csr.js';
import type { Clock } from '../clock.js';
import type { CpuOffload } from '../cpu/offload.js';
import { AbortedError, CertificateInvalidError, IssuersFailedError, LockLostError, StorageError } from '../errors.js';
import { AcmeIssuer } from '../issuers/acme.js';
import type { IssuedCertificate, Issuer } from '../issuers/types.js';
import type { IssuerRateLimits } from '../limits/issuer-limits.js';
import type { Logger } from '../logger.js';
import { servesValidCertificate, type ManagedRecord } from '../renewal/managed-record.js';
import { servedCertificatePem } from '../renewal/served-pem.js';
import type { EventLoopTurns } from '../renewal/pacer.js';
import { certificateMetaFrom, storeVerifiedCertificateSet, type CertificateSet } from '../storage/certificates.js';
import { checkCertificateWritable, checkStorageWritable } from '../storage/check.js';
import { certificateKeys } from '../storage/layout.js';
import type { Storage } from '../storage/types.js';
import { buildMaterial, type CertificateMaterial } from '../tls/certificate-material.js';

/** How long a passed storage write check is trusted before the next order checks again. */
export const STORAGE_CHECK_INTERVAL_MS = 60_000;

export interface IssuedSet {
  set: CertificateSet;
  /** Parsed and checked once: the same material is stored and then served. */
  material: CertificateMaterial;
  /** The chain's certificates as the issuer parsed them, when it did (the revocation checker reads them). */
  certificates?: readonly X509Certificate[] | undefined;
}

export interface IssuanceOptions {
  storage: Storage;
  clock: Clock;
  logger: Logger;
  cpu: CpuOffload;
  turns: EventLoopTurns;
  limits: IssuerRateLimits;
}

export class Issuance {
  readonly #options: IssuanceOptions;
  #storageCheckedAt: number | undefined;

  constructor(options: IssuanceOptions) {
    this.#options = options;
  }

  /** Issues and stores a set for the record; the caller holds `lockName`. `beforeIssuer` runs right before an issuer is asked. */
  async issueAndStore(record: ManagedRecord, signal: AbortSignal, lockName: string, beforeIssuer?: () => void): Promise<IssuedSet> {
    await this.#checkStorage();
    const errors: Error[] = [];
    const issuers = record.settings.issuers;
    for (const [index, issuer] of issuers.entries()) {
      if (signal.aborted) throw new AbortedError('The operation was aborted', { cause: signal.reason });
      try {
        return await this.#issueWith(issuer, record, signal, lockName, beforeIssuer);
      } catch (error) {
        if (error instanceof StorageError) this.#storageCheckedAt = undefined;
        // Lost lease: another process owns this name now; asking the next issuer would only order a duplicate.
        if (signal.aborted || error instanceof LockLostError) throw error;
        errors.push(error as Error);
        // The last issuer's failure goes to the caller, which reports it (cert_failed and its warn, or the CLI's line):
        // logging it here too would say it twice. A failure that falls back to the next issuer is only said here.
        const log = this.#options.logger;
        if (index < issuers.length - 1) log.warn({ err: error, names: record.names, issuer: issuer.key }, 'issuer failed; trying the next one');
        else log.debug({ err: error, names: record.names, issuer: issuer.key }, 'issuer failed');
      }
    }
    throw errors.length === 1 ? errors[0] : new IssuersFailedError(errors);
  }

  /**
   * A broken storage is found before any CA call; a check that passed is trusted for a minute
   * (a mass renewal would otherwise add three synced writes per certificate).
   */
  async #checkStorage(): Promise<void> {
    const now = this.#options.clock.now();
    const checkedAt = this.#storageCheckedAt;
    if (checkedAt !== undefined && now - checkedAt <= STORAGE_CHECK_INTERVAL_MS && now >= checkedAt) return;
    await checkStorageWritable(this.#options.storage);
    this.#storageCheckedAt = now;
  }

  async #issueWith(issuer: Issuer, record: ManagedRecord, signal: AbortSignal, lockName: string, beforeIssuer: (() => void) | undefined): Promise<IssuedSet> {
    const { storage, cpu, turns, limits, clock } = this.#options;
    // The set must be storable at its own path (a file where its folder should be...) before anything is ordered.
    // The probe runs while the key, the CSR and the CA session are made; an ACME issuer awaits it before newOrder.
    const probeError = checkCertificateWritable(storage, certificateKeys(issuer.key, record.certName)).then(
      () => undefined,
      (error: unknown) => error,
    );
    const probePassed = async (): Promise<void> => {
      const error = await probeError;
      if (error !== undefined) throw error;
    };
    let issued: IssuedCertificate;
    let keyPem: string;
    let key: KeyObject;
    try {
      // Another issuer may issue at once, without a hook: its probe must have passed first.
      if (!(issuer instanceof AcmeIssuer)) await probePassed();
      ({ issued, keyPem, key } = await this.#ask(issuer, record, signal, beforeIssuer, probePassed));
      await probePassed();
    } catch (error) {
      // A failed probe is the failure reported, as when it ran before everything else.
      throw (await probeError) ?? error;
    }
    await turns.turn();
    // Parsed and checked once (chain order, key match, names): the same material is stored and then served.
    const material = buildMaterial(issued.chainPem, key, { managed: true, checkValidity: false, certificates: issued.certificates });
    const uncovered = record.names.filter((name) => !material.names.includes(name));
    if (uncovered.length > 0) throw new CertificateInvalidError(`the issued certificate does not cover ${uncovered.join(', ')}`);
    const meta = certificateMetaFrom({
      certPem: issued.chainPem,
      keyPem,
      issuerKey: issuer.key,
      names: record.names,
      issuerData: issued.issuerData,
      profile: issued.profile,
      profileRequested: issued.profileRequested,
      notBefore: material.notBefore,
      notAfter: material.notAfter,
      serialNumber: material.serialNumber,
      keyType: record.settings.keyType,
    });
    // Fenced by the lock: a paused process whose lease expired must not overwrite what the new holder stored.
    const set = await storeVerifiedCertificateSet(storage, { certPem: issued.chainPem, keyPem, meta }, { lock: lockName });
    return { set, material, certificates: issued.certificates };
  }

  /** Takes the issuer's rate-limit token, makes the key and CSR, and asks the issuer. */
  async #ask(
    issuer: Issuer,
    record: ManagedRecord,
    signal: AbortSignal,
    beforeIssuer: (() => void) | undefined,
    beforeOrder: () => Promise<void>,
  ): Promise<{ issued: IssuedCertificate; keyPem: string; key: KeyObject }> {
    const { storage, cpu, turns, limits, clock } = this.#options;
    await limits.for({ key: issuer.key, directoryUrl: issuer instanceof AcmeIssuer ? issuer.config.directoryUrl : undefined }).take(signal);
    // A renewal is background work: its key and CSR are made off the event loop. A first obtain has a caller
    // waiting (start-up, a handshake) and skips the worker's start-up; it still runs in a turn of its own.
    const { keyPem, key, csr } = servesValidCertificate(record, clock.now())
      ? await cpu.keyAndCsr(record.identifiers, record.settings.keyType)
      : await turns.exclusive(() => createKeyAndCsr(record.identifiers, record.settings.keyType));
    // `replaces` names the certificate this one succeeds (ARI): read from storage for a name only listed so far.
    const replacesCertificatePem = record.issuerKey === issuer.key ? await servedCertificatePem(record, storage, this.#options.logger) : undefined;
    await turns.turn();
    beforeIssuer?.();
    const issued = await issuer.issue({
      identifiers: record.identifiers,
      csr,
      signal,
      beforeOrder,
      ...(replacesCertificatePem !== undefined ? { replacesCertificatePem } : {}),
      ...(record.settings.profile !== undefined ? { profile: record.settings.profile } : {}),
      // Profiles belong to one CA: only a renewal from the same issuer keeps the one asked for before.
      ...(record.profileRequested === true && record.profile !== undefined && record.issuerKey === issuer.key ? { keptProfile: record.profile } : {}),
    });
    return { issued, keyPem, key };
  }
}
