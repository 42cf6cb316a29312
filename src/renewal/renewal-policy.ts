import { CertificateInvalidError, InvalidOptionError } from '../errors.js';
import { DEFAULT_RENEWAL_JITTER_RATIO, DEFAULT_RENEWAL_WINDOW_RATIO, DEFAULT_SHORT_LIVED_RENEWAL_RATIO } from '../defaults.js';
export { DEFAULT_RENEWAL_WINDOW_RATIO, DEFAULT_SHORT_LIVED_RENEWAL_RATIO, DEFAULT_RENEWAL_JITTER_RATIO };

/** Lifetimes up to this length count as short-lived. */
export const SHORT_LIVED_LIFETIME_MS = 10 * 24 * 60 * 60 * 1000;
/** Upper bound of the jitter whatever the lifetime. */
export const MAX_RENEWAL_JITTER_MS = 24 * 60 * 60 * 1000;
/** With this fraction of the lifetime left a renewal is an emergency: ARI no longer delays it, failures log at error level. */
export const EMERGENCY_REMAINING_RATIO = 1 / 20;

export interface CertificateLifetime {
  /** Epoch ms. */
  notBefore: number;
  /** Epoch ms. */
  notAfter: number;
}

export interface RenewalDueTimeInput extends CertificateLifetime {
  /** Fraction of the lifetime left when renewal is due, in (0, 1). */
  ratio?: number | undefined;
  /** The same for lifetimes of 10 days or less. */
  shortLivedRatio?: number | undefined;
  /** Jitter as a fraction of the renewal window, in [0, 1); 0 disables it. */
  jitter?: number | undefined;
  /** Returns a number in [0, 1); injectable for tests. */
  random?: (() => number) | undefined;
}

/**
 * When the lifetime rule says to renew: when `ratio` of the lifetime is left
 * (`shortLivedRatio` for short-lived certificates), minus a random jitter of
 * at most `jitter` of the renewal window (and at most a day). The jitter only
 * moves renewal earlier, so the result always lies inside [notBefore, notAfter).
 */
export function renewalDueTime(input: RenewalDueTimeInput): number {
  const lifetime = lifetimeOf(input);
  const ratio = checkRatio(input.ratio ?? DEFAULT_RENEWAL_WINDOW_RATIO, 'renewalWindowRatio');
  const shortLivedRatio = checkRatio(input.shortLivedRatio ?? DEFAULT_SHORT_LIVED_RENEWAL_RATIO, 'shortLivedRenewalRatio');
  const jitter = input.jitter ?? DEFAULT_RENEWAL_JITTER_RATIO;
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter < 1)) {
    throw new InvalidOptionError('renewalJitter', 'must be a number in [0, 1)');
  }
  const window = lifetime * (lifetime <= SHORT_LIVED_LIFETIME_MS ? shortLivedRatio : ratio);
  const maxJitter = Math.min(window * jitter, MAX_RENEWAL_JITTER_MS);
  const random = input.random ?? Math.random;
  return Math.floor(input.notAfter - window - maxJitter * unit(random()));
}

/** The moment a certificate's renewal becomes an emergency (1/20 of its lifetime left). */
export function emergencyTime(cert: CertificateLifetime): number {
  return Math.floor(cert.notAfter - lifetimeOf(cert) * EMERGENCY_REMAINING_RATIO);
}

/** True when 1/20 of the lifetime or less is left: renew regardless of ARI, log each failure at error level. */
export function isEmergency(cert: CertificateLifetime, now: number): boolean {
  return now >= emergencyTime(cert);
}

export interface AriWindow {
  /** Epoch ms, inclusive. */
  windowStart: number;
  /** Epoch ms, exclusive. */
  windowEnd: number;
}

/**
 * Picks a uniformly random time in [windowStart, windowEnd) (RFC 9773 §4.2).
 * A window with end <= start is no answer: undefined, and the caller uses the
 * lifetime rule. A `previous` selection still inside the window is kept, so a
 * re-fetch of an unchanged window (or a restart) does not move the renewal.
 */
export function selectAriTime(window: AriWindow, random: () => number = Math.random, previous?: number): number | undefined {
  const { windowStart: start, windowEnd: end } = window;
  if (!Number.isFinite(start) || !Number.isFinite(end) || end <= start) return undefined;
  if (previous !== undefined && Number.isFinite(previous) && previous >= start && previous < end) return previous;
  return Math.min(end - 1, start + Math.floor((end - start) * unit(random())));
}

export interface RenewalPlanInput extends RenewalDueTimeInput {
  /** The CA's suggested window (RFC 9773), if it gave a usable one. */
  ari?: AriWindow | undefined;
  /** A time selected earlier inside the same window (kept in the sidecar). */
  ariSelectedTime?: number | undefined;
  /**
   * Whether an ARI time later than the lifetime rule postpones renewal.
   * Default true: RFC 9773 §4.2 asks clients to renew inside the CA's window,
   * which lets the CA spread load. False keeps the lifetime rule as a ceiling,
   * so ARI can only bring renewal forward.
   */
  ariMayPostpone?: boolean | undefined;
}

export type RenewalSource = 'lifetime' | 'ari' | 'emergency';

export interface RenewalPlan {
  /** Epoch ms; in the past means "renew now". */
  dueAt: number;
  /** What decided `dueAt`. */
  source: RenewalSource;
  /** The time chosen inside the ARI window, to persist; undefined without a usable window. */
  ariSelectedTime: number | undefined;
  /** When renewal becomes an emergency (1/20 of the lifetime left). */
  emergencyAt: number;
}

/**
 * Combines the lifetime rule with ARI. With a usable window the certificate
 * renews at the selected time inside it, even if that is in the past (then at
 * once: the CA may be revoking it), but never later than the emergency point,
 * whatever the CA says. Without a usable window (none, malformed, end <= start)
 * the lifetime rule applies: a window that yields no time never means
 * "renew now" (certmagic's zero-time flaw).
 */
export function planRenewal(input: RenewalPlanInput): RenewalPlan {
  const lifetimeDue = renewalDueTime(input);
  const emergencyAt = emergencyTime(input);
  const selected = input.ari ? selectAriTime(input.ari, input.random ?? Math.random, input.ariSelectedTime) : undefined;
  if (selected === undefined) {
    return { dueAt: Math.min(lifetimeDue, emergencyAt), source: 'lifetime', ariSelectedTime: undefined, emergencyAt };
  }
  const mayPostpone = input.ariMayPostpone ?? true;
  let dueAt = selected;
  let source: RenewalSource = 'ari';
  if (!mayPostpone && lifetimeDue < dueAt) {
    dueAt = lifetimeDue;
    source = 'lifetime';
  }
  if (dueAt > emergencyAt) {
    dueAt = emergencyAt;
    source = 'emergency';
  }
  return { dueAt, source, ariSelectedTime: selected, emergencyAt };
}

function lifetimeOf(cert: CertificateLifetime): number {
  const { notBefore, notAfter } = cert;
  if (!Number.isFinite(notBefore) || !Number.isFinite(notAfter) || notAfter <= notBefore) {
    throw new CertificateInvalidError('Certificate validity is empty or malformed (notAfter must be later than notBefore)');
  }
  return notAfter - notBefore;
}

function checkRatio(value: number, option: string): number {
  if (typeof value !== 'number' || !(value > 0 && value < 1)) {
    throw new InvalidOptionError(option, 'must be a number between 0 and 1 (exclusive)');
  }
  return value;
}

/** Guards against an injected random source returning values outside [0, 1). */
function unit(value: number): number {
  if (!(value >= 0)) return 0;
  return value >= 1 ? 1 - Number.EPSILON : value;
}

/**
 * A number in [0, 1) derived from a string (FNV-1a). Renewal jitter seeded by
 * a certificate's serial number is the same in every process sharing storage
 * and after a restart.
 */
export function seededRandom(seed: string): number {
  let hash = 2166136261;
  for (let i = 0; i < seed.length; i++) {
    hash ^= seed.charCodeAt(i);
    hash = Math.imul(hash, 16777619);
  }
  return (hash >>> 0) / 2 ** 32;
}

/** The sidecar fields a renewal time is computed from (ISO strings, as stored). */
export interface StoredRenewalFacts {
  notBefore: string;
  notAfter: string;
  serialNumber: string;
  renewal?: { ari?: { windowStart: string; windowEnd: string; selectedTime: string } | undefined } | undefined;
}

/** Due time of a stored certificate, computed the same way by every process (and by the CLI's list). */
export function storedRenewalDueAt(facts: StoredRenewalFacts, ratio: number): number {
  return storedRenewalPlan(facts, ratio).dueAt;
}

/** The whole plan of a stored certificate (due time and what decided it). */
export function storedRenewalPlan(facts: StoredRenewalFacts, ratio: number): RenewalPlan {
  const ari = facts.renewal?.ari;
  return planRenewal({
    notBefore: Date.parse(facts.notBefore),
    notAfter: Date.parse(facts.notAfter),
    ratio,
    random: () => seededRandom(facts.serialNumber),
    ...(ari ? { ari: { windowStart: Date.parse(ari.windowStart), windowEnd: Date.parse(ari.windowEnd) }, ariSelectedTime: Date.parse(ari.selectedTime) } : {}),
  });
}
