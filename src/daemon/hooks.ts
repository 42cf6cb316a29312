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
import { spawn } from 'node:child_process';
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
export function runHookOnce(hook: DeployHookConfig, cert: DeployedCertificate, signal?: AbortSignal): Promise<HookRun> {
  const [program, ...args] = hook.command as [string, ...string[]];
  const where = cert.lineage ?? cert.names.join(', ');
  const redact = createRedactor({ secrets: Object.values(hook.env) });
  if (signal?.aborted) return Promise.reject(new AbortedError('deploy hook aborted', { cause: signal.reason }));
  return new Promise<HookRun>((resolve, reject) => {
    const child = spawn(program, args, {
      env: { ...process.env, ...hook.env, ...hookEnvironment(cert) },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      shell: false,
    });
    let captured = Buffer.alloc(0);
    let cut = false;
    let stopReason: 'timeout' | 'abort' | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let settled = false;
    const signalGroup = (sig: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // the group is gone already
      }
    };
    const stop = (why: 'timeout' | 'abort'): void => {
      if (stopReason) return;
      stopReason = why;
      signalGroup('SIGTERM');
      killTimer = setTimeout(() => signalGroup('SIGKILL'), HOOK_KILL_GRACE_MS);
      killTimer.unref();
    };
    const onAbort = (): void => stop('abort');
    const timer = setTimeout(() => stop('timeout'), hook.timeoutMs);
    timer.unref();
    signal?.addEventListener('abort', onAbort, { once: true });
    const finish = (error: Error | undefined, run?: HookRun): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      signal?.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve(run as HookRun);
    };
    const capture = (chunk: Buffer): void => {
      captured = Buffer.concat([captured, chunk]);
      if (captured.length > CAPTURE_BYTES) {
        captured = captured.subarray(captured.length - CAPTURE_BYTES);
        cut = true;
      }
    };
    child.stdout.on('data', capture);
    child.stderr.on('data', capture);
    child.on('error', (error: NodeJS.ErrnoException) => {
      finish(new DeployError('hook', where, `cannot run deploy hook ${program}: ${error.code ?? error.message}`, { cause: error }));
    });
    child.on('exit', () => {
      // A descendant that left the group may hold the pipes open: do not wait for it after a kill.
      if (stopReason) {
        child.stdout.destroy();
        child.stderr.destroy();
      }
    });
    child.on('close', (code, sig) => {
      let text = captured.toString('utf8');
      // A capture cut mid-line may hold half a secret no pattern knows: drop that line.
      if (cut) text = text.slice(text.indexOf('\n') + 1);
      const output = tail(redact(text));
      if (stopReason === 'abort') finish(new AbortedError(`deploy hook ${program} was stopped`, { cause: signal?.reason }));
      else if (stopReason === 'timeout') finish(new DeployError('hook', where, `deploy hook ${program} did not finish within ${hook.timeoutMs} ms and was killed${output ? `; output: ${output}` : ''}`));
      else if (code === 0) finish(undefined, { output });
      else {
        const status = code === null ? `signal ${sig ?? 'unknown'}` : `exit ${code}`;
        finish(new DeployError('hook', where, `deploy hook ${program} failed (${status})${output ? `: ${output}` : ' with no output'}`));
      }
    });
  });
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
