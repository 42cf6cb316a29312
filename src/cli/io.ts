/**
 * What a CLI run talks to: streams, environment, working directory and a stop
 * signal. Injected, so commands run in-process in tests exactly as from the bin.
 */
import type { Readable, Writable } from 'node:stream';
import type { Logger, LogLevel } from '../logger.js';
import { pino, REDACT_PATHS } from '../logger.js';

export interface CliOutput extends Writable {
  isTTY?: boolean;
}

export interface CliInput extends Readable {
  isTTY?: boolean;
  setRawMode?: (mode: boolean) => unknown;
}

export interface CliIo {
  stdout: CliOutput;
  stderr: CliOutput;
  stdin: CliInput;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Aborted on SIGINT/SIGTERM: long commands stop and clean up, `demo` shuts its server down. */
  signal: AbortSignal;
}

/** Log lines go to stderr, so stdout stays clean for tables and JSON. */
export function cliLogger(level: LogLevel, stderr: CliOutput): Logger {
  return pino({ name: 'certkeeper', level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, stderr);
}

export function writeLine(stream: CliOutput, line = ''): void {
  stream.write(`${line}\n`);
}
