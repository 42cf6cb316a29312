/**
 * The validity of a cached managed certificate as two numbers, checked on
 * every handshake that uses it: a host that slept past a certificate's
 * notAfter (its renewal timer counts monotonic time, which stood still) must
 * not serve it on silently. The check is two comparisons; the report runs
 * after the handshake's callback, at most once per certificate per interval.
 */
import type { Logger } from '../logger.js';
import type { CertificateMaterial } from './certificate-material.js';
import type { InvalidServedCertificate } from './context-cache-options.js';
import { DEFAULT_INVALID_SERVED_RECHECK_MS } from '../defaults.js';

/** A notBefore this little ahead of our clock is CA clock skew, not a reason to replace the certificate. */
export const NOT_BEFORE_TOLERANCE_MS = 5 * 60_000;

export interface ServedValidity {
  readonly validFrom: number;
  readonly validUntil: number;
  /** When a handshake last reported this certificate invalid. */
  reportedAt: number | undefined;
}

/** Unmanaged certificates never report (nobody here renews them; their expiry warnings say so). */
export function servedValidity(material: CertificateMaterial): ServedValidity {
  return material.managed
    ? { validFrom: material.notBefore.getTime() - NOT_BEFORE_TOLERANCE_MS, validUntil: material.notAfter.getTime(), reportedAt: undefined }
    : { validFrom: -Infinity, validUntil: Infinity, reportedAt: undefined };
}

export function reportIfInvalid(
  validity: ServedValidity,
  material: CertificateMaterial,
  now: number,
  onInvalid: (invalid: InvalidServedCertificate) => void,
  stillOpen: () => boolean,
  logger: Logger | undefined,
): void {
  if (now < validity.validUntil && now >= validity.validFrom) return;
  const last = validity.reportedAt;
  if (last !== undefined && Math.abs(now - last) < DEFAULT_INVALID_SERVED_RECHECK_MS) return;
  validity.reportedAt = now;
  const reason = now >= validity.validUntil ? 'expired' : 'not_yet_valid';
  queueMicrotask(() => {
    if (!stillOpen()) return;
    try {
      onInvalid({ material, reason, now });
    } catch (error) {
      logger?.error({ err: error }, 'onInvalid listener threw');
    }
  });
}
