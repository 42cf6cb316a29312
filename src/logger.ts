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

const LEVEL_RANK: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };
const LOG_METHODS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

/**
 * The library's own logger when the application gives none: JSON on stderr
 * (fd 2, synchronous so the last lines survive a crash), never the
 * application's stdout. pino (nine packages) loads with the first line
 * actually written: a keeper at 'warn' that has nothing to say never loads it,
 * and calls below the level are no-ops that build nothing.
 */
export function createDefaultLogger(level: LogLevel): Logger {
  let root: Logger | undefined;
  const real = (): Logger =>
    (root ??= pino({ name: 'certkeeper', level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, pinoModule.destination({ dest: 2, sync: true })));
  return deferredLogger(LEVEL_RANK[level], real);
}

/** A logger whose pino instance (and each child's) is made on the first enabled call. */
function deferredLogger(threshold: number, build: () => Logger): Logger {
  let built: Logger | undefined;
  const get = (): Logger => (built ??= build());
  const noop: LogFn = () => {};
  const logger = { child: (bindings: Record<string, unknown>) => deferredLogger(threshold, () => get().child(bindings)) } as Logger;
  for (const method of LOG_METHODS) {
    logger[method] = LEVEL_RANK[method] < threshold ? noop : (((...args: [object, string?]) => get()[method](...args)) as LogFn);
  }
  return logger;
}
