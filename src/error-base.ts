/**
 * The base of every certkeeper error: a stable `code`, an optional `cause`,
 * and a process-wide brand so that two installed copies recognise each other.
 */
import type { ErrorCode } from './error-codes.js';

export interface CertKeeperErrorOptions {
  cause?: unknown;
}

/**
 * Brand shared by every copy of certkeeper loaded in a process (Symbol.for is
 * process-wide), so errors are recognised even when an adapter resolves its
 * own copy of the core and `instanceof` against one class would fail.
 */
const BRAND = Symbol.for('certkeeper.error');

/** True for an error thrown by any copy of certkeeper (prefer this over `instanceof` in adapters). */
export function isCertKeeperError(value: unknown): value is CertKeeperError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
}

export class CertKeeperError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options: CertKeeperErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }

  /**
   * `instanceof` across copies: a branded error is an instance of a class when
   * its prototype chain holds a class of the same name (subclasses inherit this).
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    if (!isCertKeeperError(value)) return false;
    for (let proto = Object.getPrototypeOf(value); proto !== null; proto = Object.getPrototypeOf(proto)) {
      if (Object.hasOwn(proto, 'constructor') && (proto.constructor as { name?: unknown }).name === this.name) return true;
    }
    return false;
  }
}
Object.defineProperty(CertKeeperError.prototype, BRAND, { value: true });
