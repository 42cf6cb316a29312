/**
 * Wires the revocation checker to the keeper: every served managed
 * certificate is watched; a revoked one is marked on its record, reported
 * once (`cert_revoked`, a warn line) and handed to the scheduler, which
 * renews it at once through the one obtain path (paced, backed off on
 * failure, `replaces` naming the revoked certificate).
 */
import type tls from 'node:tls';
import type { ResolvedConfig } from '../config/index.js';
import type { TypedEmitter } from '../events.js';
import type { ManagedRecord } from '../renewal/managed-record.js';
import { servedCertificatePem } from '../renewal/served-pem.js';
import type { RenewalScheduler } from '../renewal/scheduler.js';
import { RevocationChecker, type Revocation } from '../revocation/checker.js';
import type { Storage } from '../storage/types.js';
import type { Registry } from './registry.js';

export interface RevocationWatch {
  readonly checker: RevocationChecker;
  /** Staples cached good OCSP answers on the server's handshakes; returns a function that stops. */
  staple(server: tls.Server): () => void;
  close(): Promise<void>;
}

export interface RevocationWatchInput {
  config: ResolvedConfig;
  events: TypedEmitter;
  registry: Registry;
  scheduler: RenewalScheduler;
  storage: Storage;
  track<T>(work: Promise<T>): Promise<T>;
}

export function watchRevocation(input: RevocationWatchInput): RevocationWatch | undefined {
  const { config, events, registry, scheduler, storage, track } = input;
  if (!config.revocationCheck) return undefined;
  const log = config.logger.child({ component: 'revocation' });
  const checker = new RevocationChecker({
    config: config.revocationCheck,
    clock: config.clock,
    logger: log,
    lookup: (certName) => registry.get(certName),
    // An evicted certificate is read back from storage at its next check rather than kept in memory all along.
    certificatePem: (record) => servedCertificatePem(record, storage, log),
    onRevoked: (record, revocation) => onRevoked(record, revocation),
    track,
  });
  const onRevoked = (record: ManagedRecord, revocation: Revocation): void => {
    if (record.revoked?.serialNumber === revocation.serialNumber) return;
    record.revoked = { ...revocation };
    log.warn({ names: record.names, serialNumber: revocation.serialNumber, reason: revocation.reason, source: revocation.source }, 'the CA revoked the certificate; replacing it now');
    events.emit('cert_revoked', {
      names: [...record.names],
      issuer: record.issuerKey,
      serialNumber: revocation.serialNumber,
      notAfter: record.notAfter !== undefined ? new Date(record.notAfter) : undefined,
      revokedAt: new Date(revocation.revokedAt),
      reason: revocation.reason,
      source: revocation.source,
    });
    scheduler.scheduleNext(record);
  };
  const offs = (['cert_obtained', 'cert_loaded'] as const).map((event) =>
    events.on(event, ({ names }) => {
      const record = names[0] !== undefined ? registry.serving(names[0]) : undefined;
      if (record) checker.watch(record);
    }),
  );
  return {
    checker,
    staple: (server) => (config.revocationCheck && config.revocationCheck.stapling ? checker.staples.attach(server) : () => undefined),
    close: async () => {
      offs.forEach((off) => off());
      await checker.close();
    },
  };
}
