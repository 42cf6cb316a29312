/**
 * What happens when a handshake was answered with a managed certificate that
 * is expired or not yet valid by our clock (the TLS cache noticed, after the
 * handshake). Typically the host slept past the renewal: the timer still
 * waits for monotonic time. Off the handshake path, once per certificate at a
 * time: serve a valid set from storage if a peer stored one, else renew now
 * (unless a backoff runs), else keep serving what there is, said once.
 */
import type { CertServedInvalidEvent } from '../events.js';
import { replaceExpiredAtOnce, type ManagedRecord } from '../renewal/managed-record.js';
import { MIN_RENEWAL_INTERVAL_MS } from '../renewal/scheduler.js';
import type { CertificateMeta } from '../storage/certificates.js';
import type { InvalidServedCertificate } from '../tls/context-cache.js';
import type { CertificateMaterial } from '../tls/certificate-material.js';
import { NOT_BEFORE_TOLERANCE_MS } from '../tls/served-validity.js';
import { renewSoon, type KeeperParts } from './parts.js';

type Action = CertServedInvalidEvent['action'];

export class ServedInvalidHandler {
  readonly #parts: KeeperParts;
  /** Certificate names being handled now (one storage read and one renewal at a time). */
  readonly #busy = new Set<string>();
  /** Certificate name -> id of the certificate last announced, so each certificate is logged once. */
  readonly #announced = new Map<string, string>();

  constructor(parts: KeeperParts) {
    this.#parts = parts;
  }

  handle(invalid: InvalidServedCertificate): void {
    const parts = this.#parts;
    if (parts.closing()) return;
    const record = this.#recordServing(invalid.material);
    if (record === undefined || this.#busy.has(record.certName)) return;
    this.#busy.add(record.certName);
    // A handshake noticed before the jump detector's next look: plan every other certificate again too.
    parts.scheduler.checkClock();
    parts
      .track(this.#act(record, invalid))
      .catch((error: unknown) => parts.log.warn({ err: error, names: record.names }, 'could not replace an invalid served certificate'))
      .finally(() => this.#busy.delete(record.certName));
  }

  async #act(record: ManagedRecord, { material, reason }: InvalidServedCertificate): Promise<void> {
    const { stored, pipeline, scheduler, config } = this.#parts;
    const now = config.clock.now();
    let action: Action;
    if (reason === 'not_yet_valid' && record.obtainedAt !== undefined) {
      // Our clock is behind the CA's: a new certificate would look just as early.
      action = 'none';
    } else if (pipeline.has(record.certName)) {
      // Already on its way (the jump was noticed first): that run re-reads storage under the lock, so no read here.
      action = 'renewing';
    } else if (await this.#adoptValidStored(record, material)) {
      action = 'adopted';
    } else if (record.materialId !== material.id) {
      return; // replaced while storage was read
    } else if (pipeline.has(record.certName)) {
      action = 'renewing';
    } else if (record.finalError || (record.backoff !== undefined && record.backoff.nextAttemptAt > now)) {
      action = 'waiting';
    } else if (
      record.obtainedAt !== undefined &&
      now - record.obtainedAt >= 0 &&
      now - record.obtainedAt < MIN_RENEWAL_INTERVAL_MS &&
      !(reason === 'expired' && replaceExpiredAtOnce(record, now))
    ) {
      // Just obtained and already invalid by our clock: ordering again at once would only loop; the scheduler retries.
      action = 'waiting';
    } else {
      if (reason === 'expired') renewSoon(this.#parts, record);
      else this.#renewNotYetValid(record);
      action = 'renewing';
    }
    if (action === 'adopted') scheduler.scheduleNext(record);
    this.#announce(record, material, reason, action);
  }

  /**
   * A certificate that is not yet valid is not due by the lifetime rule, and the pipeline would adopt the same stored
   * set again: it is replaced by a forced renewal (the backoff was checked above; at most once, see obtainedAt).
   */
  #renewNotYetValid(record: ManagedRecord): void {
    const parts = this.#parts;
    const run = parts.pipeline
      .run(record, { renewal: true, force: true, signal: parts.signal })
      .catch((error: unknown) => parts.log.debug({ err: error, names: record.names }, 'renewal of a not yet valid certificate failed; rescheduled'))
      .finally(() => parts.scheduler.scheduleNext(record));
    void parts.track(run);
  }

  /** A peer may have renewed it already: a set in storage that is valid now and covers the names is served instead. */
  async #adoptValidStored(record: ManagedRecord, material: CertificateMaterial): Promise<boolean> {
    const { stored, config } = this.#parts;
    for (const issuer of record.settings.issuers) {
      const meta = await stored.readMeta(issuer.key, record.certName);
      if (!meta || meta.serialNumber === material.serialNumber || !validNow(meta, config.clock.now(), record)) continue;
      const set = await stored.readSet(issuer.key, record.certName);
      if (!set || !validNow(set.meta, config.clock.now(), record) || record.materialId !== material.id) continue;
      stored.adopt(record, set);
      record.finalError = false;
      return true;
    }
    return false;
  }

  #recordServing(material: CertificateMaterial): ManagedRecord | undefined {
    for (const name of material.names) {
      const record = this.#parts.registry.serving(name);
      if (record !== undefined) return record.materialId === material.id ? record : undefined;
    }
    return undefined;
  }

  #announce(record: ManagedRecord, material: CertificateMaterial, reason: 'expired' | 'not_yet_valid', action: Action): void {
    if (this.#announced.get(record.certName) === material.id) return;
    this.#announced.set(record.certName, material.id);
    const { log, events } = this.#parts;
    const what = {
      names: [...record.names],
      issuer: record.issuerKey,
      reason,
      notBefore: material.notBefore,
      notAfter: material.notAfter,
      serialNumber: material.serialNumber,
      action,
    };
    log.warn(
      { names: what.names, reason, notBefore: material.notBefore.toISOString(), notAfter: material.notAfter.toISOString(), serialNumber: material.serialNumber, action },
      action === 'adopted'
        ? 'served certificate is out of its validity; a valid one from storage is served instead'
        : `served certificate is out of its validity; it stays served until it is replaced (${action})`,
    );
    events.emit('cert_served_invalid', what);
  }
}

/** Valid by our clock now (the same tolerance for a notBefore slightly ahead as the TLS cache) and covering the record's names. */
function validNow(meta: CertificateMeta, now: number, record: ManagedRecord): boolean {
  const notBefore = Date.parse(meta.notBefore);
  const notAfter = Date.parse(meta.notAfter);
  return notAfter > now && notBefore - NOT_BEFORE_TOLERANCE_MS <= now && record.names.every((name) => meta.names.includes(name));
}
