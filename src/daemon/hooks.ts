/**
 * Deploy hooks: programs run after a certificate's files were written (e.g.
 * `nginx -s reload`, `systemctl reload haproxy`). As certbot's --deploy-hook,
 * they get RENEWED_DOMAINS (space-separated) and RENEWED_LINEAGE (the folder
 * of the files) in the environment, plus CERTKEEPER_* with the names, paths,
 * serial and expiry. The program runs without a shell, in its own process
 * group (a timeout kills its children too); its output is captured, and what
 * an error or a log line carries of it is redacted (src/redact.ts) and cut to
 * its last lines. A failed hook is retried with a doubling delay; the
 * certificate is never renewed again for it.
 */
import { runProcess } from '../child-process.js';
import { sleep, type Clock } from '../clock.js';
import { AbortedError, DeployError } from '../errors.js';
import type { Logger } from '../logger.js';
import { createRedactor, tail } from '../redact.js';
import type { DeployHookConfig } from './config-parts.js';
import type { LineageFiles } from './files.js';

/** Time between SIGTERM and SIGKILL when a hook is stopped. */
export const HOOK_KILL_GRACE_MS = 2_000;
/** Output kept while a hook runs (before redaction; the end is what matters). */
const CAPTURE_BYTES = 64 * 1024;

export interface DeployedCertificate {
  names: readonly string[];
  /** Folder of the files; undefined when none were written (`renew --deploy-hook` without --files). */
  lineage: string | undefined;
  files: LineageFiles | undefined;
  serialNumber: string;
  notAfter: Date;
  issuer: string;
  renewal: boolean;
}

export function hookEnvironment(cert: DeployedCertificate): Record<string, string> {
  const env: Record<string, string> = {
    RENEWED_DOMAINS: cert.names.join(' '),
    CERTKEEPER_NAMES: cert.names.join(' '),
    CERTKEEPER_SERIAL: cert.serialNumber,
    CERTKEEPER_NOT_AFTER: cert.notAfter.toISOString(),
    CERTKEEPER_ISSUER: cert.issuer,
    CERTKEEPER_RENEWAL: cert.renewal ? '1' : '0',
  };
  if (cert.lineage !== undefined) {
    env.RENEWED_LINEAGE = cert.lineage;
    env.CERTKEEPER_LINEAGE = cert.lineage;
  }
  if (cert.files !== undefined) {
    env.CERTKEEPER_CERT_PATH = cert.files.cert;
    env.CERTKEEPER_CHAIN_PATH = cert.files.chain;
    env.CERTKEEPER_FULLCHAIN_PATH = cert.files.fullchain;
    env.CERTKEEPER_KEY_PATH = cert.files.privkey;
    env.CERTKEEPER_COMBINED_PATH = cert.files.combined;
  }
  return env;
}

export interface HookRun {
  /** Redacted end of stdout and stderr together. */
  output: string;
}

/** Runs a hook once; resolves on exit status 0, else rejects with DeployError (stage `hook`) or AbortedError. */
export async function runHookOnce(hook: DeployHookConfig, cert: DeployedCertificate, signal?: AbortSignal): Promise<HookRun> {
  const [program] = hook.command as [string, ...string[]];
  const where = cert.lineage ?? cert.names.join(', ');
  const redact = createRedactor({ secrets: Object.values(hook.env) });
  if (signal?.aborted) throw new AbortedError('deploy hook aborted', { cause: signal.reason });
  const result = await runProcess(hook.command as [string, ...string[]], {
    env: { ...process.env, ...hook.env, ...hookEnvironment(cert) },
    timeoutMs: hook.timeoutMs,
    killGraceMs: HOOK_KILL_GRACE_MS,
    signal,
    capture: 'all',
    captureBytes: CAPTURE_BYTES,
  });
  if (result.spawnError) {
    const error = result.spawnError;
    throw new DeployError('hook', where, `cannot run deploy hook ${program}: ${error.code ?? error.message}`, { cause: error });
  }
  let text = result.output.toString('utf8');
  // A capture cut mid-line may hold half a secret no pattern knows: drop that line.
  if (result.cut) text = text.slice(text.indexOf('\n') + 1);
  const output = tail(redact(text));
  if (result.stopped === 'abort') throw new AbortedError(`deploy hook ${program} was stopped`, { cause: signal?.reason });
  if (result.stopped === 'timeout') throw new DeployError('hook', where, `deploy hook ${program} did not finish within ${hook.timeoutMs} ms and was killed${output ? `; output: ${output}` : ''}`);
  if (result.code === 0) return { output };
  const status = result.code === null ? `signal ${result.signal ?? 'unknown'}` : `exit ${result.code}`;
  throw new DeployError('hook', where, `deploy hook ${program} failed (${status})${output ? `: ${output}` : ' with no output'}`);
}

export interface HookOutcome {
  hook: DeployHookConfig;
  ok: boolean;
  attempts: number;
  /** The last failure, when not ok. */
  error: Error | undefined;
}

export interface RetryContext {
  clock: Clock;
  logger: Logger;
  signal?: AbortSignal | undefined;
  /** Called after each failed attempt (the daemon emits it; the CLI prints it). */
  onFailure?: ((failure: { hook: DeployHookConfig; attempt: number; error: Error; retryInMs: number | undefined }) => void) | undefined;
}

/** Runs a hook, retrying a failure after retryDelayMs, doubled each time, up to hook.retries times. */
export async function runHookWithRetries(hook: DeployHookConfig, cert: DeployedCertificate, context: RetryContext): Promise<HookOutcome> {
  const log = context.logger;
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= hook.retries + 1; attempt++) {
    try {
      const run = await runHookOnce(hook, cert, context.signal);
      log.info({ names: [...cert.names], hook: hook.command[0], attempt, ...(run.output ? { output: run.output } : {}) }, 'deploy hook succeeded');
      return { hook, ok: true, attempts: attempt, error: undefined };
    } catch (error) {
      lastError = error as Error;
      if (error instanceof AbortedError) return { hook, ok: false, attempts: attempt, error: lastError };
      const retryInMs = attempt <= hook.retries ? hook.retryDelayMs * 2 ** (attempt - 1) : undefined;
      log.error({ err: error, names: [...cert.names], hook: hook.command[0], attempt, retryInMs }, retryInMs === undefined ? 'deploy hook failed; no retries left' : 'deploy hook failed; retrying');
      context.onFailure?.({ hook, attempt, error: lastError, retryInMs });
      if (retryInMs === undefined) break;
      // Clock timers do not hold the process open; a retry still owed must (the one-shot `renew` would exit).
      const hold = setInterval(() => undefined, 1 << 30);
      try {
        await sleep(context.clock, retryInMs, context.signal);
      } catch {
        return { hook, ok: false, attempts: attempt, error: lastError };
      } finally {
        clearInterval(hold);
      }
    }
  }
  return { hook, ok: false, attempts: hook.retries + 1, error: lastError };
}
