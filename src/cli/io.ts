/**
 * What a CLI run talks to: streams, environment, working directory and a stop
 * signal. Injected, so commands run in-process in tests exactly as from the bin.
 */
import { Writable, type Readable } from 'node:stream';
import type { Logger, LogLevel } from '../logger.js';
import { pino, REDACT_PATHS } from '../logger.js';
import { describeError } from './errors.js';
import type { LogFormat } from './settings.js';

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

/**
 * Log lines go to stderr, so stdout stays clean for tables and JSON: pino JSON
 * with `--log-format json`, else one human line per record (no stack trace).
 */
export function cliLogger(level: LogLevel, stderr: CliOutput, format: LogFormat = 'human'): Logger {
  const options = { name: 'certkeeper', level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return pino(options, format === 'json' ? stderr : { write: (line: string) => void stderr.write(humanLogLine(line)) });
}

const LEVEL_PREFIX: ReadonlyArray<[number, string]> = [[60, 'fatal: '], [50, 'error: '], [40, 'warning: ']];

/** One pino JSON record as `certkeeper: warning: <msg> (<names>): <error> [<code>]`. */
export function humanLogLine(json: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const level = typeof record.level === 'number' ? record.level : 30;
  const prefix = LEVEL_PREFIX.find(([min]) => level >= min)?.[1] ?? '';
  const names = Array.isArray(record.names) ? ` (${record.names.join(', ')})` : typeof record.name === 'string' && record.name !== 'certkeeper' ? ` (${record.name})` : '';
  let text = `certkeeper: ${prefix}${String(record.msg ?? '')}${names}`;
  if (record.err !== undefined) {
    // No remedy here: the command's own report of the failure carries it, once.
    const { message, code } = describeError(record.err);
    text += `: ${message.replace(/\s*\n\s*/g, ' ')}${code !== undefined ? ` [${code}]` : ''}`;
  }
  return `${text}\n`;
}

export function writeLine(stream: CliOutput, line = ''): void {
  stream.write(`${line}\n`);
}

/** The output of --quiet: accepts and drops everything. */
export const NULL_OUTPUT: CliOutput = new Writable({
  write(_chunk, _encoding, callback) {
    callback();
  },
});
