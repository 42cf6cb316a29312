// Public API: re-exports only.
export { CertKeeper, DEFAULT_EAGER_LOAD_LIMIT, MIN_RENEWAL_INTERVAL_MS } from './manager/keeper.js';
export type { CertificateStatus, ManageEntry, RenewOptions } from './manager/keeper.js';
export * from './config/index.js';
export * from './errors.js';
export type * from './events.js';
export { systemClock, type Clock, type TimerHandle } from './clock.js';
export { validateLogger, REDACT_PATHS, type Logger, type LogLevel } from './logger.js';
export { parseIdentifier, normalizeName, normalizeServerName, type Identifier } from './names.js';

export type * from './storage/types.js';
export { FileStorage, DEFAULT_LOCK_STALE_MS, type FileStorageOptions } from './storage/file.js';
export { MemoryStorage, MemoryBackend, type MemoryStorageOptions } from './storage/memory.js';
export { encryptPrivateKeys, createKeyEncryptor, type KeyEncryptor } from './storage/encryption.js';
export { LeaseLocks, resolveLeaseLockOptions, type LeaseBackend, type LeaseLockOptions } from './storage/lease-locks.js';
export { validateKey, validatePrefix, validateLockName, joinKey } from './storage/keys.js';
export {
  loadCertificateSet,
  saveCertificateSet,
  listCertificateNames,
  type CertificateMeta,
  type CertificateSet,
  type CertificateRef,
} from './storage/certificates.js';
export { checkStorageWritable } from './storage/check.js';
export { storageFromUrl, parseStorageUrl, redactStorageUrl, STORAGE_URL_FORMS, type StorageFromUrlOptions, type StorageLocation } from './storage/url.js';

export type * from './issuers/types.js';
export { AcmeIssuer, type AcmeIssuerOptions } from './issuers/acme.js';
export { InternalIssuer, type InternalIssuerOptions } from './issuers/internal.js';
// InternalIssuerOptions.offload takes one (the keeper gives the issuers it builds its own).
export { CpuOffload, type CpuOffloadOptions } from './cpu/offload.js';
export { toPkcs12, type Pkcs12Options } from './issuers/pkcs12.js';
export { createKeyAndCsr } from './acme/csr.js';
export { DIRECTORY_PRESETS, resolveDirectoryUrl } from './acme/directories.js';
export { DEFAULT_RETRY_POLICY } from './acme/retry.js';
export { InvalidProfileError, ProfileUnavailableError } from './acme/profiles.js';

export type * from './challenges/types.js';
export { Http01Solver, createHttpChallengeResponder } from './challenges/http01.js';
export { TlsAlpn01Solver, TlsAlpnChallengeStore } from './challenges/tls-alpn01.js';
export { Dns01Solver } from './challenges/dns01.js';
export type * from './dns/types.js';
export { Rfc2136Provider, type Rfc2136Options } from './dns/rfc2136.js';
export { PowerDnsProvider, type PowerDnsOptions } from './dns/powerdns.js';
export { ExecDnsProvider, type ExecDnsOptions } from './dns/exec.js';
export { ChalltestsrvDnsProvider } from './dns/challtestsrv.js';
export { parseTsigKeyFile } from './dns/tsig.js';

export { ContextCache, type ContextCacheOptions, type ContextCacheStats } from './tls/context-cache.js';
export { buildMaterial, type CertificateMaterial } from './tls/certificate-material.js';
export { buildTlsOptions, attachServer } from './tls/tls-options.js';
export type { UnmanagedHandle, LoadCertificateFilesOptions, LoadCertificatePemOptions, ReloadOutcome } from './tls/file-reload.js';
export type { ClientCaOptions, TlsOptionsWithClientCa } from './tls/client-ca.js';

export { KeeperMetrics, PROMETHEUS_CONTENT_TYPE, type MetricFamily, type MetricFamiliesSource } from './observability/metrics.js';
export { signNotification, verifyNotificationSignature, SIGNATURE_HEADER, TIMESTAMP_HEADER, EVENT_HEADER, DELIVERY_HEADER } from './notify/deliver.js';
export * from './notify/options.js';
export type { NotificationPayload } from './notify/notifier.js';
export { escapeHtml, renderStatusHtml, type StatusHandler, type StatusHandlerOptions } from './http/status-page.js';
export type { StatusReport, StatusEntry, CertificateSource } from './http/status-report.js';
export { runDoctor, doctorFailed, evaluateCaa, type CheckResult, type CheckStatus, type DoctorOptions } from './doctor/index.js';

export { serveHttps, type ServeHttpsOptions, type HttpsService } from './serve-https.js';
export { redirectToHttps } from './http/challenge.js';
export { RevocationDataError, RevocationFetchError, type RevocationSource } from './revocation/errors.js';
