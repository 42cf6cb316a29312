/**
 * Issuer specs and key types. A spec is checked by the issuer's own option
 * resolver, so a spec accepted here is never rejected when its issuer is built.
 */
import { InvalidOptionError } from '../errors.js';
import { resolveAcmeIssuerOptions } from '../issuers/acme.js';
import { resolveInternalIssuerOptions, type InternalIssuerOptions } from '../issuers/internal.js';
import type { Issuer } from '../issuers/types.js';
import { KEY_TYPES, type KeyType } from '../kinds.js';
import type { Logger } from '../logger.js';
import type { Storage } from '../storage/types.js';
import { profilePreference } from '../validate.js';
import type { AcmeIssuerSpec, InternalIssuerSpec, IssuerSpec } from './options.js';

/** Stand-ins for what the keeper supplies when it builds an issuer from a spec; only used to validate the spec. */
const NO_LOGGER: Logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {}, child: () => NO_LOGGER };
const SPEC_STORAGE = { load() {}, store() {}, lock() {}, unlock() {} } as unknown as Storage;

export function resolveKeyType(value: unknown, option: string): KeyType | undefined {
  if (value === undefined) return undefined;
  if (!KEY_TYPES.includes(value as KeyType)) throw new InvalidOptionError(option, `must be one of ${KEY_TYPES.join(', ')}`);
  return value as KeyType;
}

/** An ACME profile or an ordered preference of them (keeper, issuer spec or per-call settings). */
export function resolveProfile(value: unknown, option: string): readonly string[] | undefined {
  return profilePreference(value, option);
}

export function validateIssuer(issuer: unknown, option: string): asserts issuer is IssuerSpec {
  const candidate = issuer as (Partial<Issuer> & { type?: unknown }) | null;
  if (typeof candidate !== 'object' || candidate === null) throw new InvalidOptionError(option, 'must be an issuer object or spec');
  if (candidate.type === 'acme') {
    const { type: _type, ca, ...rest } = candidate as AcmeIssuerSpec;
    const where = ca !== undefined && /^https?:\/\//i.test(ca) ? { directoryUrl: ca } : { ca: ca as never };
    return validateSpec(() => resolveAcmeIssuerOptions({ ...rest, ...where, storage: SPEC_STORAGE, solvers: {} }), option);
  }
  if (candidate.type === 'internal') {
    const { name, leafLifetimeMs } = candidate as InternalIssuerSpec;
    return validateSpec(() => resolveInternalIssuerOptions({ name, leafLifetimeMs, storage: SPEC_STORAGE, logger: NO_LOGGER } as InternalIssuerOptions), option);
  }
  if (typeof candidate.issue !== 'function' || typeof candidate.key !== 'string' || candidate.key.length === 0) {
    throw new InvalidOptionError(option, "must be { type: 'acme' | 'internal', ... } or an issuer with a string `key` and an issue() method");
  }
}

/** Checked by the issuers' own resolvers, so a spec accepted here is never rejected when its issuer is built. */
function validateSpec(resolve: () => unknown, option: string): void {
  try {
    resolve();
  } catch (error) {
    if (error instanceof InvalidOptionError) throw new InvalidOptionError(`${option}.${error.option}`, error.message.replace(/^Invalid option "[^"]*": /, ''));
    throw error;
  }
}
