import type * as Pino from 'pino';
import { lazyModule } from './lazy.js';
import { InvalidOptionError } from './errors.js';

type LogFn = {
  (obj: object, msg?: string): void;
  (msg: string): void;
};

/** The subset of pino's Logger that certkeeper uses; any pino-compatible logger fits. */
export interface Logger {
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  child(bindings: Record<string, unknown>): Logger;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

const REQUIRED_METHODS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'child'] as const;

/** Checks an injected logger up front, so a wrong object fails at construction, not at the first log line. */
export function validateLogger(logger: unknown, option = 'logger'): Logger {
  if (typeof logger !== 'object' || logger === null) {
    throw new InvalidOptionError(option, 'must be a pino-compatible logger object');
  }
  for (const method of REQUIRED_METHODS) {
    if (typeof (logger as Record<string, unknown>)[method] !== 'function') {
      throw new InvalidOptionError(option, `must have a ${method}() method (pino-compatible logger)`);
    }
  }
  return logger as Logger;
}

/**
 * Paths pino redacts even if a secret is ever passed in a log object by
 * mistake. The code never logs secrets on purpose; this is a second fence.
 */
export const REDACT_PATHS = [
  'privateKey', '*.privateKey', 'privateKeyPem', '*.privateKeyPem', 'accountKey', '*.accountKey',
  'hmacKey', '*.hmacKey', 'secret', '*.secret', 'password', '*.password', 'passphrase', '*.passphrase',
  'apiKey', '*.apiKey', 'keyAuthorization', '*.keyAuthorization',
];

const pinoModule = lazyModule<typeof Pino>('pino');

/** pino, loaded on the first logger built (a keeper given its own logger never loads it). */
export function pino(...args: Parameters<typeof Pino.pino>): ReturnType<typeof Pino.pino> {
  return pinoModule.pino(...args);
}

/**
 * The library's own logger when the application gives none: JSON on stderr
 * (fd 2, synchronous so the last lines survive a crash), never the
 * application's stdout.
 */
export function createDefaultLogger(level: LogLevel): Logger {
  return pino({ name: 'certkeeper', level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, pinoModule.destination({ dest: 2, sync: true }));
}
