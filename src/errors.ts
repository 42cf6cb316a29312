/**
 * Every error certkeeper throws is a CertKeeperError with a stable `code`
 * from the table in error-codes.ts (never reused or renamed; the README's
 * table is checked against it by a test).
 */
import { CertKeeperError, type CertKeeperErrorOptions } from './error-base.js';
import type { AcmeProblemFields, AcmeSubproblem, DnsQueryFailure, NameFailure } from './kinds.js';
export { ERROR_CODES, type ErrorCode } from './error-codes.js';
export type { AcmeProblemFields, AcmeSubproblem, DnsQueryFailure, NameFailure } from './kinds.js';

export { CertKeeperError, isCertKeeperError, type CertKeeperErrorOptions } from './error-base.js';

export class InvalidOptionError extends CertKeeperError {
  readonly option: string;
  constructor(option: string, message: string, options?: CertKeeperErrorOptions) {
    super('ERR_INVALID_OPTION', `Invalid option "${option}": ${message}`, options);
    this.option = option;
  }
}

export class InvalidNameError extends CertKeeperError {
  /** The offending input, made printable (control characters escaped, truncated). */
  readonly input: string;
  constructor(input: string, reason: string) {
    const shown = printable(input);
    super('ERR_INVALID_NAME', `Invalid name ${JSON.stringify(shown)}: ${reason}`);
    this.input = shown;
  }
}

export class InvalidStorageKeyError extends CertKeeperError {
  constructor(key: string, reason: string) {
    super('ERR_INVALID_STORAGE_KEY', `Invalid storage key ${JSON.stringify(printable(key))}: ${reason}`);
  }
}

export class StorageNotFoundError extends CertKeeperError {
  readonly key: string;
  constructor(key: string, options?: CertKeeperErrorOptions) {
    super('ERR_STORAGE_NOT_FOUND', `Storage key not found: ${key}`, options);
    this.key = key;
  }
}

export class StorageError extends CertKeeperError {
  constructor(message: string, options?: CertKeeperErrorOptions) {
    super('ERR_STORAGE', message, options);
  }
}

/** A storage URL's adapter package cannot be imported (not installed where certkeeper or the working directory can find it). */
export class StorageAdapterMissingError extends CertKeeperError {
  readonly packageName: string;
  constructor(packageName: string, scheme: string, options?: CertKeeperErrorOptions) {
    super('ERR_STORAGE_ADAPTER_MISSING', `Storage URLs "${scheme}:" need the package ${packageName}, which is not installed: npm install ${packageName}`, options);
    this.packageName = packageName;
  }
}

/**
 * FileStorage refuses a path another user could have planted or can change:
 * a symlink below the root, or a folder or file not owned by this process's
 * user (or root) or writable by group or others (ssh's StrictModes).
 */
export class StorageInsecureError extends CertKeeperError {
  readonly path: string;
  constructor(path: string, reason: string) {
    super('ERR_STORAGE_INSECURE', `Refusing to use ${JSON.stringify(printable(path, 300))}: ${reason}`);
    this.path = path;
  }
}

export class LockTimeoutError extends CertKeeperError {
  readonly lockName: string;
  constructor(lockName: string, message?: string, options?: CertKeeperErrorOptions) {
    super('ERR_LOCK_TIMEOUT', message ?? `Timed out waiting for lock "${lockName}"`, options);
    this.lockName = lockName;
  }
}

export class LockLostError extends CertKeeperError {
  readonly lockName: string;
  constructor(lockName: string, message?: string, options?: CertKeeperErrorOptions) {
    super('ERR_LOCK_LOST', message ?? `Lock "${lockName}" was lost before the work finished`, options);
    this.lockName = lockName;
  }
}

export class TermsNotAgreedError extends CertKeeperError {
  readonly termsOfServiceUrl: string | undefined;
  /** Kept so a front end (the CLI) can word its own remedy. */
  readonly directoryUrl: string;
  constructor(directoryUrl: string, termsOfServiceUrl: string | undefined) {
    super(
      'ERR_TERMS_NOT_AGREED',
      `The CA at ${directoryUrl} requires accepting its terms of service` +
        (termsOfServiceUrl ? ` (${termsOfServiceUrl})` : '') +
        '; read them and set agreeToTerms: true',
    );
    this.termsOfServiceUrl = termsOfServiceUrl;
    this.directoryUrl = directoryUrl;
  }
}

export class EabRequiredError extends CertKeeperError {
  constructor(directoryUrl: string, options?: CertKeeperErrorOptions) {
    super(
      'ERR_EAB_REQUIRED',
      `The CA at ${directoryUrl} requires external account binding; set externalAccountBinding: { kid, hmacKey }`,
      options,
    );
  }
}

const ACME_ERROR_PREFIX = 'urn:ietf:params:acme:error:';

export class AcmeProblemError extends CertKeeperError {
  readonly type: string;
  readonly status: number | undefined;
  readonly detail: string | undefined;
  readonly subproblems: AcmeSubproblem[];
  readonly identifier: { type: string; value: string } | undefined;
  readonly retryAfterMs: number | undefined;
  readonly url: string | undefined;

  constructor(problem: AcmeProblemFields, options?: CertKeeperErrorOptions) {
    const short = problem.type.startsWith(ACME_ERROR_PREFIX) ? problem.type.slice(ACME_ERROR_PREFIX.length) : problem.type;
    const who = problem.identifier ? ` for ${problem.identifier.value}` : '';
    super('ERR_ACME_PROBLEM', `ACME problem ${short}${who}${problem.status ? ` (HTTP ${problem.status})` : ''}: ${problem.detail ?? 'no detail'}`, options);
    this.type = problem.type;
    this.status = problem.status;
    this.detail = problem.detail;
    this.subproblems = problem.subproblems ?? [];
    this.identifier = problem.identifier;
    this.retryAfterMs = problem.retryAfterMs;
    this.url = problem.url;
  }

  /** The problem type without the `urn:ietf:params:acme:error:` prefix. */
  get shortType(): string {
    return this.type.startsWith(ACME_ERROR_PREFIX) ? this.type.slice(ACME_ERROR_PREFIX.length) : this.type;
  }
}

export class AcmeUnreachableError extends CertKeeperError {
  constructor(message: string, options?: CertKeeperErrorOptions) {
    super('ERR_ACME_UNREACHABLE', message, options);
  }
}

export class AcmeRateLimitedError extends CertKeeperError {
  readonly retryAt: number;
  constructor(message: string, retryAt: number, options?: CertKeeperErrorOptions) {
    super('ERR_ACME_RATE_LIMITED', message, options);
    this.retryAt = retryAt;
  }
}

/** The CA asked (503 + Retry-After) not to be contacted before `retryAt` (epoch ms). */
export class AcmeUnavailableError extends CertKeeperError {
  readonly retryAt: number;
  constructor(message: string, retryAt: number, options?: CertKeeperErrorOptions) {
    super('ERR_ACME_UNAVAILABLE', message, options);
    this.retryAt = retryAt;
  }
}

export class AcmeOrderError extends CertKeeperError {
  constructor(message: string, options?: CertKeeperErrorOptions) {
    super('ERR_ACME_ORDER', message, options);
  }
}

export class ChallengeFailedError extends CertKeeperError {
  readonly identifier: string;
  readonly challengeType: string | undefined;
  constructor(identifier: string, challengeType: string | undefined, message: string, options?: CertKeeperErrorOptions) {
    super('ERR_CHALLENGE_FAILED', message, options);
    this.identifier = identifier;
    this.challengeType = challengeType;
  }
}

/** A standalone challenge listener (HTTP-01 or TLS-ALPN-01) could not bind its port. */
export class ChallengeListenerError extends CertKeeperError {
  readonly address: string;
  constructor(address: string, message: string, options?: CertKeeperErrorOptions) {
    super('ERR_CHALLENGE_FAILED', `Cannot listen for challenges on ${address}: ${message}`, options);
    this.address = address;
  }
}

export class NoSolverError extends CertKeeperError {
  constructor(identifier: string, offered: readonly string[], configured: readonly string[]) {
    super(
      'ERR_NO_SOLVER',
      `No solver for ${identifier}: the CA offered [${offered.join(', ')}], configured solvers are [${configured.join(', ')}]`,
    );
  }
}

export class DnsPropagationTimeoutError extends CertKeeperError {
  readonly recordName: string;
  readonly missingOn: string[];
  constructor(recordName: string, missingOn: string[], timeoutMs: number) {
    super(
      'ERR_DNS_PROPAGATION_TIMEOUT',
      `TXT record ${recordName} not visible after ${timeoutMs} ms on: ${missingOn.join(', ')}`,
    );
    this.recordName = recordName;
    this.missingOn = missingOn;
  }
}

export class DnsProviderError extends CertKeeperError {
  readonly provider: string;
  /** A provider-specific reason, e.g. `BADSIG`, `REFUSED`, `HTTP 422`, `exit 1`. */
  readonly reason: string | undefined;
  constructor(provider: string, message: string, reason?: string, options?: CertKeeperErrorOptions) {
    super('ERR_DNS_PROVIDER', `${provider}: ${message}`, options);
    this.provider = provider;
    this.reason = reason;
  }
}

export class DnsQueryError extends CertKeeperError {
  /** `host:port` of the server that was asked. */
  readonly server: string;
  readonly reason: DnsQueryFailure;
  /** The response code (e.g. `SERVFAIL`, `REFUSED`) when reason is `rcode`. */
  readonly rcode: string | undefined;
  constructor(server: string, reason: DnsQueryFailure, message: string, rcode?: string, options?: CertKeeperErrorOptions) {
    super('ERR_DNS_QUERY', `DNS query to ${server} failed: ${message}`, options);
    this.server = server;
    this.reason = reason;
    this.rcode = rcode;
  }
}

export class CertificateInvalidError extends CertKeeperError {
  constructor(message: string, options?: CertKeeperErrorOptions) {
    super('ERR_CERTIFICATE_INVALID', message, options);
  }
}

export class AbortedError extends CertKeeperError {
  constructor(message = 'The operation was aborted', options?: CertKeeperErrorOptions) {
    super('ERR_ABORTED', message, options);
  }
}

export class TimeoutError extends CertKeeperError {
  constructor(message: string, options?: CertKeeperErrorOptions) {
    super('ERR_TIMEOUT', message, options);
  }
}

export class ClosedError extends CertKeeperError {
  constructor(what = 'CertKeeper') {
    super('ERR_CLOSED', `${what} is closed`);
  }
}

export class ManageError extends CertKeeperError {
  readonly failures: NameFailure[];
  constructor(failures: NameFailure[]) {
    const lines = failures.map((f) => `  ${f.names.join(', ')}: ${f.error.message}`);
    super('ERR_MANAGE_FAILED', `${failures.length} certificate(s) could not be served:\n${lines.join('\n')}`);
    this.failures = failures;
  }
}

/** Throws AbortedError when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new AbortedError('The operation was aborted', { cause: signal.reason });
  }
}

/** Escapes control characters and truncates, so user input is safe to put in a message. */
export function printable(input: unknown, max = 80): string {
  const text = String(input);
  // eslint-disable-next-line no-control-regex
  const escaped = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return escaped.length > max ? `${escaped.slice(0, max)}…` : escaped;
}

/** Too many on-demand decisions in progress: this one is refused at once instead of queueing (random-SNI floods). */
export class OnDemandBusyError extends CertKeeperError {
  constructor(name: string, limit: number) {
    super('ERR_ON_DEMAND_BUSY', `On-demand decision for ${JSON.stringify(printable(name))} refused: ${limit} decisions already in progress`);
  }
}

export class NoCertificateError extends CertKeeperError {
  constructor(servername: string) {
    super('ERR_NO_CERTIFICATE', `No certificate for server name ${JSON.stringify(printable(servername))}`);
  }
}

export class CertificateFileError extends CertKeeperError {
  readonly path: string;
  /** The system error code (ENOENT, EACCES...), when there is one. */
  readonly errno: string | undefined;
  constructor(path: string, errno: string | undefined, options?: CertKeeperErrorOptions) {
    super('ERR_CERTIFICATE_FILE', `Cannot read ${JSON.stringify(printable(path, 200))}${errno ? ` (${errno})` : ''}`, options);
    this.path = path;
    this.errno = errno;
  }
}

/**
 * A name is not attempted now: its last failure (recorded in storage, by this
 * process or a peer) set a backoff that still runs, or was final (a problem
 * such as rejectedIdentifier). Not itself a new failure of the name.
 */
export class BackoffError extends CertKeeperError {
  /** When the next automatic attempt is allowed (epoch ms); undefined when final. */
  readonly nextAttemptAt: number | undefined;
  readonly failures: number;
  readonly final: boolean;
  /** Code of the failure that set the backoff, when it had one. */
  readonly lastErrorCode: string | undefined;
  constructor(name: string, state: { failures: number; nextAttemptAt: number; final?: boolean | undefined; lastError?: { code?: string | undefined; message: string } | undefined }) {
    const last = state.lastError ? ` (last error${state.lastError.code ? ` ${state.lastError.code}` : ''}: ${state.lastError.message})` : '';
    super(
      'ERR_BACKOFF',
      state.final === true
        ? `${printable(name)} is not retried automatically: the CA refused it${last}; renew it with { force: true } to try again`
        : `${printable(name)} failed ${state.failures} time(s) and is not retried before ${new Date(state.nextAttemptAt).toISOString()}${last}`,
    );
    this.nextAttemptAt = state.final === true ? undefined : state.nextAttemptAt;
    this.failures = state.failures;
    this.final = state.final === true;
    this.lastErrorCode = state.lastError?.code;
  }
}

/** A server certkeeper opens for the application (serveHttps) could not listen. */
export class ListenError extends CertKeeperError {
  /** host:port ('*' for all interfaces). */
  readonly address: string;
  constructor(address: string, what: string, options?: CertKeeperErrorOptions & { reason?: string }) {
    super('ERR_LISTEN', `Cannot listen for ${what} on ${address}${options?.reason ? `: ${options.reason}` : ''}`, options);
    this.address = address;
  }
}

/** A notification was not delivered (webhook answered an error or was unreachable, exec hook failed or timed out). */
export class NotificationError extends CertKeeperError {
  readonly notification: { type: string; key: string };
  readonly sink: 'webhook' | 'exec';
  readonly attempts: number;

  constructor(sink: 'webhook' | 'exec', notification: { type: string; key: string }, attempts: number, message: string, options?: CertKeeperErrorOptions) {
    super('ERR_NOTIFY', `${sink} notification ${notification.type} not delivered after ${attempts} attempt(s): ${message}`, options);
    this.sink = sink;
    this.notification = notification;
    this.attempts = attempts;
  }
}

/** Writing a certificate's files for another server, or a deploy hook run after it, failed. */
export class DeployError extends CertKeeperError {
  readonly stage: 'files' | 'hook';
  /** Directory of the certificate's files (its lineage). */
  readonly lineage: string;
  constructor(stage: 'files' | 'hook', lineage: string, message: string, options?: CertKeeperErrorOptions) {
    super('ERR_DEPLOY', message, options);
    this.stage = stage;
    this.lineage = lineage;
  }
}

/** Every issuer of a name failed (with one issuer, its own error is thrown instead). */
export class IssuersFailedError extends CertKeeperError {
  readonly errors: readonly Error[];

  constructor(errors: readonly Error[]) {
    super('ERR_ISSUERS_FAILED', `every issuer failed: ${errors.map((e) => e.message).join('; ')}`, { cause: errors[errors.length - 1] });
    this.errors = errors;
  }
}

/** An IP address can be validated only by HTTP-01 or TLS-ALPN-01 (RFC 8738 §7), and the issuer has neither. */
export class IpChallengeError extends CertKeeperError {
  readonly identifier: string;

  constructor(identifier: string, configured: readonly string[]) {
    super('ERR_IP_CHALLENGE', `${identifier} is an IP address: only http-01 or tls-alpn-01 can validate it (RFC 8738), and the configured challenges are [${configured.join(', ')}]`);
    this.identifier = identifier;
  }
}
