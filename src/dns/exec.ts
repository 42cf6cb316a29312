/**
 * DNS-01 through a user's program, for any DNS service that has a CLI or a
 * script but no provider here. The program is run directly (no shell, so the
 * name and value are never interpreted) as
 *
 *   <command> [...args] present <fqdn.> <value>
 *   <command> [...args] cleanup <fqdn.> <value>
 *
 * where <fqdn.> is the record name with a trailing dot, e.g.
 * `_acme-challenge.example.com.`, and <value> the TXT value. The record TTL is
 * in the environment as CERTKEEPER_DNS_TTL (and the zone, when known, as
 * CERTKEEPER_DNS_ZONE). Exit status 0 means done; anything else is a
 * DnsProviderError carrying the last lines of the program's stderr, with the
 * values of `env` and anything credential-shaped redacted (src/redact.ts).
 *
 * On timeout or abort the program's whole process group gets SIGTERM, then
 * SIGKILL after a grace period, so a script's own children do not linger.
 */
import { inspect } from 'node:util';
import { runProcess } from '../child-process.js';
import { AbortedError, DnsProviderError, InvalidOptionError } from '../errors.js';
import type { Logger } from '../logger.js';
import { createDefaultLogger, validateLogger } from '../logger.js';
import { createRedactor, tail } from '../redact.js';
import { durationMs } from '../validate.js';
import type { DnsProvider, DnsRecord } from './types.js';
import { DEFAULT_EXEC_TIMEOUT_MS } from '../defaults.js';
export { DEFAULT_EXEC_TIMEOUT_MS };

/** How much of the program's stderr an error carries (the end, where the cause usually is): bytes, then lines. */
export const EXEC_STDERR_LIMIT = 1024;
export const EXEC_STDERR_LINES = 10;
/** stderr kept while the program runs, before redaction: redacting only the kept tail could miss a secret cut in two. */
const EXEC_STDERR_CAPTURE = 64 * 1024;
/** Time between SIGTERM and SIGKILL when the program is stopped. */
export const EXEC_KILL_GRACE_MS = 2_000;

const PROVIDER = 'exec';

export interface ExecDnsOptions {
  /** Program to run (a path, or a name looked up in PATH). */
  command: string;
  /** Arguments placed before `present|cleanup <fqdn.> <value>`. */
  args?: string[];
  /** Per-run time limit (default 60 s); the program is killed when it passes. */
  timeoutMs?: number;
  /** Extra environment (the program also inherits this process's environment). */
  env?: Record<string, string>;
  logger?: Logger;
}

export class ExecDnsProvider implements DnsProvider {
  readonly name = PROVIDER;
  readonly #command: string;
  readonly #args: readonly string[];
  readonly #timeoutMs: number;
  readonly #env: Readonly<Record<string, string>>;
  readonly #log: Logger;
  /** Removes env values (the program's credentials, by the usual design) and credential shapes from its output. */
  readonly #redact: (text: string) => string;

  constructor(options: ExecDnsOptions) {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionError('exec', 'options object is required');
    if (typeof options.command !== 'string' || options.command.length === 0) throw new InvalidOptionError('command', 'must be a non-empty string');
    this.#command = options.command;
    const args = options.args ?? [];
    if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw new InvalidOptionError('args', 'must be an array of strings');
    this.#args = Object.freeze([...args]);
    this.#timeoutMs = durationMs(options.timeoutMs, 'timeoutMs') ?? DEFAULT_EXEC_TIMEOUT_MS;
    const env = options.env ?? {};
    if (typeof env !== 'object' || env === null || Object.values(env).some((v) => typeof v !== 'string')) {
      throw new InvalidOptionError('env', 'must map names to strings');
    }
    this.#env = Object.freeze({ ...env });
    this.#redact = createRedactor({ secrets: Object.values(this.#env) });
    const base = options.logger === undefined ? createDefaultLogger('silent') : validateLogger(options.logger);
    this.#log = base.child({ component: 'dns-exec' });
  }

  async addTxtRecord(record: DnsRecord, signal?: AbortSignal): Promise<void> {
    await this.#run('present', record, signal);
  }

  async removeTxtRecord(record: DnsRecord, signal?: AbortSignal): Promise<void> {
    await this.#run('cleanup', record, signal);
  }

  async #run(action: 'present' | 'cleanup', record: DnsRecord, signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) throw new AbortedError('DNS update aborted', { cause: signal.reason });
    const fqdn = record.name.endsWith('.') ? record.name : `${record.name}.`;
    const argv = [...this.#args, action, fqdn, record.value];
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...this.#env,
      CERTKEEPER_DNS_TTL: String(record.ttl),
      ...(record.zone === undefined ? {} : { CERTKEEPER_DNS_ZONE: record.zone }),
    };
    const started = Date.now();
    const what = `${this.#command} ${action} ${fqdn}`;

    const result = await runProcess([this.#command, ...argv], {
      env,
      timeoutMs: this.#timeoutMs,
      killGraceMs: EXEC_KILL_GRACE_MS,
      signal,
      capture: 'stderr',
      captureBytes: EXEC_STDERR_CAPTURE,
    });
    if (result.spawnError) {
      const error = result.spawnError;
      throw new DnsProviderError(PROVIDER, `cannot run ${this.#command}: ${error.code ?? error.message}`, 'SPAWN', { cause: error });
    }
    const output = this.#stderrText(result.output, result.cut, record.value);
    const durationMs = Date.now() - started;
    if (result.stopped === 'abort') throw new AbortedError(`DNS update aborted; ${what} was stopped`, { cause: signal?.reason });
    if (result.stopped === 'timeout') {
      throw new DnsProviderError(PROVIDER, `${what} did not finish within ${this.#timeoutMs} ms and was killed${output ? `; stderr: ${output}` : ''}`, 'TIMEOUT');
    }
    if (result.code === 0) {
      this.#log.debug({ action, record: { name: record.name }, durationMs, stdoutBytes: result.stdoutBytes }, 'exec DNS hook succeeded');
      return;
    }
    const status = result.code === null ? `signal ${result.signal ?? 'unknown'}` : `exit ${result.code}`;
    throw new DnsProviderError(PROVIDER, `${what} failed (${status})${output ? `: ${output}` : ' with no stderr output'}`, status);
  }

  /** The redacted end of stderr; the TXT value goes too (it names the key authorization's digest). */
  #stderrText(stderr: Buffer, truncated: boolean, txtValue: string): string {
    let text = stderr.toString('utf8');
    // A capture cut mid-line may hold half a secret no pattern knows: drop that line.
    if (truncated) text = text.slice(text.indexOf('\n') + 1);
    const redacted = this.#redact(txtValue.length >= 4 ? text.split(txtValue).join('[txt value]') : text);
    return tail(redacted, { maxLines: EXEC_STDERR_LINES, maxBytes: EXEC_STDERR_LIMIT });
  }

  toJSON(): Record<string, unknown> {
    // env may hold credentials for the program: only its names are shown.
    return { name: this.name, command: this.#command, args: this.#args, timeoutMs: this.#timeoutMs, env: Object.keys(this.#env) };
  }

  [inspect.custom](): string {
    return `ExecDnsProvider ${inspect(this.toJSON())}`;
  }
}
