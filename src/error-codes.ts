/**
 * The error-code table: every code certkeeper throws, with what it means.
 * Codes are never reused or renamed; the README's table is checked against
 * this one by a test. The error classes are in errors.ts.
 */

export const ERROR_CODES = {
  ERR_INVALID_OPTION: 'An option is missing, of the wrong type or out of range; the message names it.',
  ERR_INVALID_NAME: 'A domain name, IP address or SNI value is not acceptable as a certificate identifier (this includes names URL parsers read as IPv4, like `0x7f000001` or `127.1`, and `xn--` labels that are not valid punycode of an IDNA label).',
  ERR_INVALID_STORAGE_KEY: 'A storage key would leave the storage root or holds forbidden characters.',
  ERR_STORAGE_NOT_FOUND: 'The storage key does not exist.',
  ERR_STORAGE: 'The storage backend failed (permissions, disk full, connection lost, an operation timed out).',
  ERR_STORAGE_ADAPTER_MISSING: 'A storage URL names a backend whose adapter package is not installed; the message says which one to install (`npm install @certkeeper/storage-redis`).',
  ERR_STORAGE_INSECURE: 'A FileStorage path is a symbolic link below the root, or can be written by another user (owner or mode); `path` names it.',
  ERR_LOCK_TIMEOUT: 'A storage lock could not be obtained in time.',
  ERR_LOCK_LOST: 'A storage lock was lost (its lease expired) before the holder finished.',
  ERR_TERMS_NOT_AGREED: "The CA's terms of service must be accepted with agreeToTerms: true.",
  ERR_EAB_REQUIRED: 'The CA requires external account binding (kid and HMAC key).',
  ERR_ACME_PROBLEM: 'The CA answered with an RFC 8555 problem document (type, status, detail).',
  ERR_ACME_UNREACHABLE: 'The CA could not be reached (connection refused, DNS failure, TLS error, timeout).',
  ERR_ACME_RATE_LIMITED: 'The CA rate-limited the request and the Retry-After wait exceeds the allowed maximum.',
  ERR_ACME_UNAVAILABLE: 'The CA answered 503 with a Retry-After (or an earlier answer of it still runs) beyond the allowed wait; `retryAt` says when to ask again, and no request goes to it before.',
  ERR_ACME_ORDER: 'An order ended in an unexpected state (invalid, or not ready in time).',
  ERR_CHALLENGE_FAILED: 'No challenge could be solved for an identifier.',
  ERR_NO_SOLVER: 'None of the challenge types the CA offered has a configured solver.',
  ERR_DNS_PROPAGATION_TIMEOUT: 'The DNS-01 TXT record was not visible on every checked server in time.',
  ERR_DNS_PROVIDER: 'A DNS provider failed to add or remove a TXT record.',
  ERR_DNS_QUERY: 'A DNS query failed: no answer in time, a network error, a malformed or mismatched response, or a server error code.',
  ERR_CERTIFICATE_INVALID: 'A certificate, chain or key is malformed, expired, or does not match.',
  ERR_ABORTED: 'The operation was aborted by its AbortSignal or by close().',
  ERR_TIMEOUT: 'The operation did not finish in its allowed time.',
  ERR_CLOSED: 'The object has been closed.',
  ERR_MANAGE_FAILED: 'One or more names could not be served; `failures` lists each name and its error.',
  ERR_ON_DEMAND_BUSY: 'An on-demand decision was refused at once because onDemand.maxConcurrentDecisions are already in progress (the handshake gets no new certificate).',
  ERR_NO_CERTIFICATE: 'No certificate serves the server name of a TLS handshake (and there is no default certificate).',
  ERR_CERTIFICATE_FILE: 'A certificate, private key or client-CA bundle file could not be read (missing, permissions); `path` names it.',
  ERR_LISTEN: 'A server could not listen on its address (port in use, no permission for a port below 1024); `address` names it.',
  ERR_BACKOFF: 'The name failed recently and waits for its backoff (`nextAttemptAt`), or the CA refused it finally (`final`); renew(name, { force: true }) retries now.',
  ERR_NOTIFY: 'A notification (webhook or exec hook) could not be delivered after its retries; `notification` names its type and key.',
  ERR_DEPLOY: "The daemon could not write a certificate's files or a deploy hook failed (exit status, timeout); `stage` and `lineage` name what and where.",
  ERR_ISSUERS_FAILED: "Every issuer configured for a name failed; `errors` holds each issuer's error in order, the last one is the `cause`.",
  ERR_PROFILE_UNAVAILABLE: 'None of the ACME profiles asked for (`requested`) is offered by the CA\'s directory (`offered`); nothing was ordered.',
  ERR_INVALID_PROFILE: 'The CA refused every profile tried (`profiles`) with the ACME problem `invalidProfile`; the last problem is the `cause`.',
  ERR_IP_CHALLENGE: 'An IP address needs HTTP-01 or TLS-ALPN-01 (DNS-01 cannot validate it, RFC 8738) and neither is enabled; refused before any order.',
  ERR_REVOCATION_FETCH: 'A CRL or OCSP responder named by a managed certificate could not be fetched (network error, HTTP status, timeout, answer too large); the certificate stays served and the check is retried.',
  ERR_REVOCATION_INVALID: "A CRL or OCSP response was rejected: malformed, not signed by the certificate's issuer, for another certificate, or past its nextUpdate; it is not used and the certificate stays served.",
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;
