// Public API: re-exports only.
export { CertKeeper, DEFAULT_EAGER_LOAD_LIMIT } from './manager.js';
export type { CertificateStatus, ManageEntry, RenewOptions } from './manager.js';
export * from './config.js';
export * from './errors.js';
export type * from './events.js';
export { systemClock, type Clock, type TimerHandle } from './clock.js';
export { validateLogger, type Logger, type LogLevel } from './logger.js';
export { parseIdentifier, normalizeName, normalizeServerName, type Identifier } from './names.js';

export type * from './storage/types.js';
export { FileStorage } from './storage/file.js';
export { MemoryStorage } from './storage/memory.js';
export { encryptPrivateKeys } from './storage/encryption.js';
export type { CertificateMeta, CertificateSet } from './storage/certificates.js';

export type * from './issuers/types.js';
export { AcmeIssuer, type AcmeIssuerOptions } from './issuers/acme.js';
export { InternalIssuer, type InternalIssuerOptions } from './issuers/internal.js';
export { toPkcs12, type Pkcs12Options } from './issuers/pkcs12.js';
export { DIRECTORY_PRESETS } from './acme/directories.js';

export type * from './solvers/types.js';
export type * from './dns/types.js';
export { Rfc2136Provider } from './dns/rfc2136.js';
export { PowerDnsProvider } from './dns/powerdns.js';
export { ExecDnsProvider } from './dns/exec.js';
