/**
 * Turns the keeper's events into notifications, each sent once:
 *
 * - renewal_failing: a renewal failed with 1/20 of the lifetime left (cert_failed, emergency)
 * - cert_expiring: a certificate (managed, or loaded from files) is expiring soon (cert_expiring)
 * - cert_renewed: a certificate was renewed (cert_renewed)
 * - cert_replaced_early: the renewal was brought forward by the CA's ARI window (cert_renewed, replacedEarlyByAri)
 * - cert_revoked: the CA revoked a served certificate, seen in its CRL or OCSP answer (cert_revoked)
 *
 * Once per process: a set of keys. Once per fleet (storage shared): before
 * sending, a process takes the notification's storage lock (tryLock where the
 * storage has it: a process that does not get it leaves the sending to the
 * one that did), checks for a marker record, sends, and writes the marker.
 * A notification that could not be delivered writes no marker, so a later
 * occurrence (next expiry check, next failure, a restart) tries again.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../clock.js';
import { NotificationError, type CertKeeperError } from '../errors.js';
import type { CertExpiringEvent, CertFailedEvent, CertObtainedEvent, CertRevokedEvent, EventName, Listener } from '../events.js';
import { Lifecycle } from '../lifecycle.js';
import type { Logger } from '../logger.js';
import { hasTryLock, type Storage } from '../storage/types.js';
import { deliverExec, deliverWebhook, type OutgoingNotification } from './deliver.js';
import type { NotificationType, ResolvedNotify } from './options.js';

/** Storage prefix of the fleet's "already sent" markers. */
export const NOTIFICATION_MARKER_PREFIX = 'notifications';
/** Keys remembered per process; past this the oldest are forgotten (the storage marker still dedupes). */
const MAX_REMEMBERED = 10_000;

export interface NotificationPayload {
  type: NotificationType;
  /** Stable across processes: the dedupe key (also in the X-Certkeeper-Delivery header). */
  key: string;
  at: string;
  names: string[];
  issuer: string | undefined;
  source: 'managed' | 'files';
  notBefore?: string | undefined;
  notAfter?: string | undefined;
  serialNumber?: string | undefined;
  remainingSeconds?: number | undefined;
  renewalReason?: string | undefined;
  error?: { code: string | undefined; message: string } | undefined;
  /** cert_revoked: when the CA says it revoked the certificate, the RFC 5280 reason code, and where it was seen. */
  revokedAt?: string | undefined;
  revocationReason?: number | undefined;
  revocationSource?: 'crl' | 'ocsp' | undefined;
  attempt?: number | undefined;
  nextAttemptAt?: string | undefined;
}

export interface NotifierDeps {
  config: ResolvedNotify;
  on<E extends EventName>(event: E, listener: Listener<E>): () => void;
  emit: (failure: { type: NotificationType; key: string; error: NotificationError }) => void;
  storage: Storage;
  clock: Clock;
  logger: Logger;
}

export class Notifier implements AsyncDisposable {
  readonly #deps: NotifierDeps;
  readonly #sent = new Set<string>();
  /** Deliveries in flight, for idle(); close() waits for them through the lifecycle. */
  readonly #work = new Set<Promise<void>>();
  readonly #lifecycle = new Lifecycle('Notifier');

  constructor(deps: NotifierDeps) {
    this.#deps = deps;
    const offs = [
      deps.on('cert_failed', (event) => this.#onFailed(event)),
      deps.on('cert_expiring', (event) => this.#onExpiring(event)),
      deps.on('cert_renewed', (event) => this.#onRenewed(event)),
      deps.on('cert_revoked', (event) => this.#onRevoked(event)),
    ];
    // No new notification from the moment close() is called.
    this.#lifecycle.signal.addEventListener('abort', () => offs.forEach((off) => off()), { once: true });
  }

  /** Settles when every notification in flight is delivered or given up. */
  async idle(): Promise<void> {
    while (this.#work.size > 0) await Promise.allSettled([...this.#work]);
  }

  /** No new notifications and no further retries; the attempts under way finish (each within its timeout). */
  close(): Promise<void> {
    return this.#lifecycle.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #onFailed(event: CertFailedEvent): void {
    if (!event.renewal || event.emergency !== true) return;
    const error = event.error as Partial<CertKeeperError>;
    this.#notify({
      type: 'renewal_failing',
      // Once per served certificate entering its last 1/20: the serial, or the names when there is none yet.
      key: `renewal_failing:${event.serialNumber ?? event.names.join(',')}`,
      names: [...event.names],
      issuer: event.issuer,
      source: 'managed',
      notAfter: event.notAfter?.toISOString(),
      serialNumber: event.serialNumber,
      error: { code: typeof error.code === 'string' ? error.code : undefined, message: String(event.error.message) },
      attempt: event.attempt,
      nextAttemptAt: event.nextAttemptAt?.toISOString(),
    });
  }

  #onExpiring(event: CertExpiringEvent): void {
    this.#notify({
      type: 'cert_expiring',
      key: `cert_expiring:${event.serialNumber ?? event.names.join(',')}:${event.notAfter.toISOString()}`,
      names: [...event.names],
      issuer: event.issuer,
      source: event.managed ? 'managed' : 'files',
      notAfter: event.notAfter.toISOString(),
      serialNumber: event.serialNumber,
      remainingSeconds: Math.round(event.remainingMs / 1000),
    });
  }

  #onRenewed(event: CertObtainedEvent): void {
    const base = {
      names: [...event.names],
      issuer: event.issuer,
      source: 'managed' as const,
      notBefore: event.notBefore.toISOString(),
      notAfter: event.notAfter.toISOString(),
      serialNumber: event.serialNumber,
      renewalReason: event.renewalReason,
    };
    this.#notify({ type: 'cert_renewed', key: `cert_renewed:${event.serialNumber}`, ...base });
    if (event.replacedEarlyByAri === true) this.#notify({ type: 'cert_replaced_early', key: `cert_replaced_early:${event.serialNumber}`, ...base });
  }

  #onRevoked(event: CertRevokedEvent): void {
    this.#notify({
      type: 'cert_revoked',
      // Once per revoked certificate, whichever process (or check) saw it first.
      key: `cert_revoked:${event.serialNumber}`,
      names: [...event.names],
      issuer: event.issuer,
      source: 'managed',
      notAfter: event.notAfter?.toISOString(),
      serialNumber: event.serialNumber,
      revokedAt: event.revokedAt.toISOString(),
      revocationReason: event.reason,
      revocationSource: event.source,
    });
  }

  #notify(fields: Omit<NotificationPayload, 'at'>): void {
    const { config } = this.#deps;
    if (!config.events.has(fields.type) || this.#sent.has(fields.key) || this.#lifecycle.closed) return;
    this.#remember(fields.key);
    const payload: NotificationPayload = { ...fields, at: new Date(this.#deps.clock.now()).toISOString() };
    const work = this.#sendOnce(payload).catch((error: unknown) => {
      // Not delivered: forget the key so a later occurrence tries again.
      this.#sent.delete(payload.key);
      const failure = error instanceof NotificationError ? error : new NotificationError('webhook', payload, 0, String((error as Error).message), { cause: error });
      this.#deps.logger.error({ err: failure, notification: payload.type, key: payload.key }, 'notification not delivered');
      this.#deps.emit({ type: payload.type, key: payload.key, error: failure });
    });
    this.#work.add(work);
    void this.#lifecycle.track(work).finally(() => this.#work.delete(work));
  }

  #remember(key: string): void {
    this.#sent.add(key);
    if (this.#sent.size > MAX_REMEMBERED) this.#sent.delete(this.#sent.values().next().value as string);
  }

  async #sendOnce(payload: NotificationPayload): Promise<void> {
    const { config, storage } = this.#deps;
    if (!config.shareThroughStorage) return this.#send(payload);
    const hash = createHash('sha256').update(payload.key).digest('hex').slice(0, 32);
    const marker = `${NOTIFICATION_MARKER_PREFIX}/${hash}.json`;
    const lock = `notify-${hash}`;
    if (await storage.exists(marker)) return this.#skipped(payload, 'already sent by another process');
    if (hasTryLock(storage)) {
      if (!(await storage.tryLock(lock))) return this.#skipped(payload, 'another process is sending it');
    } else {
      await storage.lock(lock, { signal: this.#lifecycle.signal });
    }
    try {
      if (await storage.exists(marker)) return this.#skipped(payload, 'already sent by another process');
      await this.#send(payload);
      const record = { type: payload.type, key: payload.key, sentAt: new Date(this.#deps.clock.now()).toISOString() };
      await storage.store(marker, Buffer.from(`${JSON.stringify(record)}\n`)).catch((error: unknown) => {
        this.#deps.logger.warn({ err: error, key: payload.key }, 'notification sent, but its marker could not be stored; another process may send it again');
      });
    } finally {
      await storage.unlock(lock).catch((error: unknown) => this.#deps.logger.warn({ err: error, lock }, 'could not release the notification lock'));
    }
  }

  #skipped(payload: NotificationPayload, why: string): void {
    this.#deps.logger.debug({ notification: payload.type, key: payload.key }, `notification not sent: ${why}`);
  }

  async #send(payload: NotificationPayload): Promise<void> {
    const { config, clock, logger } = this.#deps;
    const outgoing: OutgoingNotification = { type: payload.type, key: payload.key, body: JSON.stringify(payload) };
    const context = (sink: string) => ({
      clock,
      signal: this.#lifecycle.signal,
      onRetry: (attempt: number, reason: string) => logger.warn({ notification: payload.type, key: payload.key, sink, attempt, reason }, 'notification attempt failed; retrying'),
    });
    const sends: Promise<number>[] = [];
    if (config.webhook) sends.push(deliverWebhook(config.webhook, outgoing, context('webhook')));
    if (config.exec) sends.push(deliverExec(config.exec, outgoing, context('exec')));
    const results = await Promise.allSettled(sends);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    // One sink failing fails the notification (so it is retried later), even if the other delivered.
    if (failed) throw failed.reason;
    logger.info({ notification: payload.type, key: payload.key, names: payload.names }, 'notification sent');
  }
}
