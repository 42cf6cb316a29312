/**
 * A stored certificate in the status page's shape (src/http/status-report.ts),
 * so `certkeeper list --json` and `certkeeper status --json` print the same
 * fields as keeper.statusHandler(). The CLI reads storage only: every set is
 * `managed` (whether a keeper registered it on demand is not stored).
 */
import type { StatusEntry } from '../http/status-report.js';
import type { StoredCertificate } from './inventory.js';

export function storedStatusEntry(c: StoredCertificate, now: number): StatusEntry {
  const lifetime = c.notAfter.getTime() - c.notBefore.getTime();
  const left = c.notAfter.getTime() - now;
  const expired = left <= 0;
  return {
    names: [...c.names],
    source: 'managed',
    state: expired ? 'expired' : 'valid',
    issuer: c.issuer,
    profile: c.profile,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    serialNumber: c.serialNumber,
    expiresInSeconds: Math.round(left / 1000),
    lifetimeLeft: lifetime > 0 ? Math.min(1, Math.max(0, left / lifetime)) : undefined,
    nextRenewalAt: c.nextRenewalAt.toISOString(),
    nextRenewalReason: c.failures > 0 ? 'retry' : c.renewalReason,
    ariWindow: c.ariWindow ? { ...c.ariWindow } : undefined,
    failures: c.failures,
    lastError: c.lastError ? { code: c.lastError.code, message: c.lastError.message, at: c.lastError.at } : undefined,
    certFile: undefined,
  };
}

/** The JSON shape of `list --json` (stable: scripts parse it); the status page's fields, plus the storage name, days left and key type. */
export function storedJson(c: StoredCertificate, now = Date.now()): Record<string, unknown> {
  return {
    ...storedStatusEntry(c, now),
    name: c.certName,
    names: c.names,
    issuer: c.issuer,
    profile: c.profile ?? null,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    daysLeft: c.daysLeft,
    nextRenewalAt: c.nextRenewalAt.toISOString(),
    serialNumber: c.serialNumber,
    keyType: c.keyType,
    failures: c.failures,
    lastError: c.lastError ?? null,
  };
}
