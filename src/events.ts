/**
 * Typed events. Each event name maps to exactly one payload type; listeners
 * receive one state object so fields can be added without breaking them.
 */
export interface CertEventBase {
  /** Names covered by the certificate, normalised. */
  names: string[];
  /** Issuer key (storage folder name of the CA), when known. */
  issuer?: string | undefined;
}

export interface CertObtainingEvent extends CertEventBase {
  renewal: boolean;
  /** Call to veto this obtain; the attempt fails with ERR_ABORTED and the reason. */
  veto(reason: string): void;
}
export interface CertObtainedEvent extends CertEventBase {
  renewal: boolean;
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
  /** For a renewal: what made it due (lifetime rule, ARI window, the 1/20 emergency point) or `forced` (renew({ force })). */
  renewalReason?: 'lifetime' | 'ari' | 'emergency' | 'forced' | 'revoked' | undefined;
  /** The CA's ARI window brought this renewal forward of the lifetime rule (e.g. ahead of a revocation). */
  replacedEarlyByAri?: boolean | undefined;
  /** For a renewal the ARI window decided: the CA's `explanationURL` for that window (never fetched by certkeeper). */
  explanationUrl?: string | undefined;
}
/** The CA suggested a new renewal window (ARI, RFC 9773) for the served certificate. */
export interface CertRenewalWindowEvent extends CertEventBase {
  /** Serial of the certificate the window is for. */
  serialNumber: string | undefined;
  windowStart: Date;
  windowEnd: Date;
  /** The moment chosen inside the window (the same in every process sharing the storage). */
  selectedTime: Date;
  /** The CA's page about this window, when it gave one: logged and reported, never fetched. */
  explanationUrl?: string | undefined;
  /** `ca`: this process asked the CA; `storage`: it read the answer a peer (or an earlier run) stored. */
  source: 'ca' | 'storage';
}
export interface CertFailedEvent extends CertEventBase {
  renewal: boolean;
  error: Error;
  /** 1 for the first failure in a row. */
  attempt: number;
  /** When the next attempt is scheduled, if any. */
  nextAttemptAt: Date | undefined;
  /** The served certificate has 1/20 of its lifetime left or less (failures are logged at error level). */
  emergency?: boolean | undefined;
  /** The served certificate, when there is one. */
  serialNumber?: string | undefined;
  notAfter?: Date | undefined;
}
export interface CertLoadedEvent extends CertEventBase {
  notAfter: Date;
  source: 'storage' | 'file' | 'memory';
}
export interface CertEvictedEvent {
  names: string[];
}
export interface OnDemandDeniedEvent {
  name: string;
  reason: string;
  /** True when the name was allowed but the on-demand rate limit was reached. */
  rateLimited?: boolean;
}
/** Why a reload of an unmanaged certificate or a client-CA bundle was refused. */
export type ReloadFailureReason =
  | 'unreadable'
  | 'certificate_malformed'
  | 'key_malformed'
  | 'key_mismatch'
  | 'passphrase'
  | 'chain_order'
  | 'expired'
  | 'not_yet_valid'
  | 'no_names'
  | 'not_ca'
  | 'invalid';
export interface CertReloadFailedEvent {
  /** Names the previous (still served) certificate covers; empty for a client-CA bundle. */
  names: string[];
  certFile?: string | undefined;
  keyFile?: string | undefined;
  /** The client-CA bundle file, when a bundle reload failed. */
  caFile?: string | undefined;
  /** Machine-readable cause; `error` holds the typed error (ERR_CERTIFICATE_INVALID or ERR_CERTIFICATE_FILE). */
  reason?: ReloadFailureReason | undefined;
  error: Error;
}
/** A reloaded unmanaged certificate covers other names than the one it replaced (it is served anyway). */
export interface CertNamesChangedEvent {
  /** Names of the new certificate. */
  names: string[];
  previousNames: string[];
  added: string[];
  removed: string[];
  certFile?: string | undefined;
  keyFile?: string | undefined;
}
/** A client-CA bundle was loaded or reloaded; new handshakes verify client certificates against it. */
export interface ClientCaLoadedEvent {
  file: string;
  /** CA certificates in the bundle. */
  certificates: number;
  /** Subjects of those certificates (one line each). */
  subjects: string[];
}
export interface CertExpiringEvent {
  names: string[];
  notAfter: Date;
  /** Milliseconds until expiry at the time of the event. */
  remainingMs: number;
  managed: boolean;
  issuer?: string | undefined;
  serialNumber?: string | undefined;
}
/** The CA revoked a served managed certificate (seen in its CRL or OCSP answer); its replacement is under way. Once per certificate and process. */
export interface CertRevokedEvent extends CertEventBase {
  serialNumber: string;
  notAfter: Date | undefined;
  revokedAt: Date;
  /** RFC 5280 reason code (0 unspecified, 1 keyCompromise, 4 superseded, 5 cessationOfOperation...). */
  reason: number;
  /** Where it was seen. */
  source: 'crl' | 'ocsp';
}
/** A notification (notify option) could not be delivered after its retries. */
export interface NotificationFailedEvent {
  /** renewal_failing, cert_expiring, cert_renewed, cert_replaced_early or cert_revoked. */
  type: string;
  /** Its dedupe key. */
  key: string;
  /** ERR_NOTIFY. */
  error: Error;
}

/** Wall time moved unlike monotonic time (the host slept, or the date was set): every renewal was planned again. */
export interface ClockJumpEvent {
  /** Positive: the wall clock went forwards (a sleep); negative: backwards. */
  deltaMs: number;
  /** Wall time at the previous look, and when the jump was noticed. */
  from: Date;
  to: Date;
}
/**
 * A handshake was answered with a certificate that is expired or not yet valid by this host's clock, typically
 * right after a sleep. Once per certificate; `action` says what certkeeper does about it.
 */
export interface CertServedInvalidEvent extends CertEventBase {
  reason: 'expired' | 'not_yet_valid';
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
  /**
   * `adopted`: a valid certificate found in storage (a peer renewed it) is served from now on;
   * `renewing`: an immediate renewal started, the certificate is served until it completes;
   * `waiting`: a failure backoff or final refusal runs, it stays served until the next attempt;
   * `none`: not yet valid although this process just obtained it (the CA's clock and ours disagree).
   */
  action: 'adopted' | 'renewing' | 'waiting' | 'none';
}

export interface CertKeeperEvents {
  cert_obtaining: CertObtainingEvent;
  cert_obtained: CertObtainedEvent;
  cert_renewed: CertObtainedEvent;
  cert_failed: CertFailedEvent;
  cert_loaded: CertLoadedEvent;
  cert_evicted: CertEvictedEvent;
  on_demand_denied: OnDemandDeniedEvent;
  cert_reload_failed: CertReloadFailedEvent;
  cert_expiring: CertExpiringEvent;
  cert_names_changed: CertNamesChangedEvent;
  client_ca_loaded: ClientCaLoadedEvent;
  notification_failed: NotificationFailedEvent;
  cert_revoked: CertRevokedEvent;
  cert_renewal_window: CertRenewalWindowEvent;
  clock_jump: ClockJumpEvent;
  cert_served_invalid: CertServedInvalidEvent;
}

export type EventName = keyof CertKeeperEvents;
export type Listener<E extends EventName> = (payload: CertKeeperEvents[E]) => void;

/** A small typed emitter. A throwing listener is reported to `onListenerError`, never to the emitter's caller. */
export class TypedEmitter {
  readonly #listeners = new Map<EventName, Set<(payload: never) => void>>();
  readonly #onListenerError: (event: EventName, error: unknown) => void;

  constructor(onListenerError: (event: EventName, error: unknown) => void = () => {}) {
    this.#onListenerError = onListenerError;
  }

  on<E extends EventName>(event: E, listener: Listener<E>): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener as (payload: never) => void);
    return () => this.off(event, listener);
  }

  off<E extends EventName>(event: E, listener: Listener<E>): void {
    this.#listeners.get(event)?.delete(listener as (payload: never) => void);
  }

  emit<E extends EventName>(event: E, payload: CertKeeperEvents[E]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<E>)(payload);
      } catch (error) {
        this.#onListenerError(event, error);
      }
    }
  }

  removeAll(): void {
    this.#listeners.clear();
  }
}
