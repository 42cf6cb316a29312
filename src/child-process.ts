/**
 * Runs a user's program (DNS hook, deploy hook, notification hook) the one
 * way certkeeper does it: argv only, never a shell, so nothing given to it is
 * interpreted; in its own process group, so stopping it (timeout or abort)
 * reaches the children a script started too: SIGTERM, then SIGKILL after a
 * grace period. The end of its output is kept, capped, for the caller to
 * redact. It never rejects: the caller turns the result into its own error.
 */
import { lazyModule } from './lazy.js';

// Loaded on first use (lazy.ts): most keepers never run a hook.
const childProcess = lazyModule<typeof import('node:child_process')>('node:child_process');

export interface RunProcessOptions {
  /** The whole environment of the program (callers spread process.env themselves). */
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  /** Time between SIGTERM and SIGKILL; 0 sends SIGKILL straight away. */
  killGraceMs: number;
  signal?: AbortSignal | undefined;
  /** Which output is kept: stderr alone, stdout and stderr together, or none (both discarded). */
  capture: 'stderr' | 'all' | 'none';
  /** Bytes of output kept while it runs, the end of it. */
  captureBytes: number;
  /** Written to the program's stdin, which is then closed; without it stdin is /dev/null. */
  stdin?: string | Buffer | undefined;
}

export interface ProcessResult {
  /** Exit code, null when the program ended by a signal (or never started). */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The kept end of the captured output. */
  output: Buffer;
  /** True when the start of the output was dropped to stay within captureBytes. */
  cut: boolean;
  /** Bytes the program wrote on stdout when only stderr is captured. */
  stdoutBytes: number;
  /** Why certkeeper stopped it, when it did. */
  stopped?: 'timeout' | 'abort';
  /** The program could not be started (ENOENT, EACCES...). */
  spawnError?: NodeJS.ErrnoException;
}

/** Runs argv[0] with argv[1..]; resolves once, when the program and its pipes are done (or it could not start). */
export function runProcess(argv: readonly [string, ...string[]], options: RunProcessOptions): Promise<ProcessResult> {
  const [program, ...args] = argv;
  const { signal } = options;
  if (signal?.aborted) return Promise.resolve({ code: null, signal: null, output: Buffer.alloc(0), cut: false, stdoutBytes: 0, stopped: 'abort' });
  return new Promise<ProcessResult>((resolve) => {
    const piped = options.capture !== 'none';
    // detached: the program leads its own process group, so a kill reaches its children too.
    const child = childProcess.spawn(program, args, {
      env: options.env,
      stdio: [options.stdin === undefined ? 'ignore' : 'pipe', piped ? 'pipe' : 'ignore', piped ? 'pipe' : 'ignore'],
      detached: true,
      shell: false,
    });
    let output = Buffer.alloc(0);
    let cut = false;
    let stdoutBytes = 0;
    let stopped: 'timeout' | 'abort' | undefined;
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
      if (stopped) return;
      stopped = why;
      if (options.killGraceMs === 0) {
        signalGroup('SIGKILL');
        return;
      }
      signalGroup('SIGTERM');
      killTimer = setTimeout(() => signalGroup('SIGKILL'), options.killGraceMs);
      killTimer.unref();
    };
    const onAbort = (): void => stop('abort');
    const timer = setTimeout(() => stop('timeout'), options.timeoutMs);
    timer.unref();
    signal?.addEventListener('abort', onAbort, { once: true });

    const finish = (result: Omit<ProcessResult, 'output' | 'cut' | 'stdoutBytes' | 'stopped'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      signal?.removeEventListener('abort', onAbort);
      resolve({ ...result, output, cut, stdoutBytes, ...(stopped === undefined ? {} : { stopped }) });
    };

    const keep = (chunk: Buffer): void => {
      output = Buffer.concat([output, chunk]);
      if (output.length > options.captureBytes) {
        output = output.subarray(output.length - options.captureBytes);
        cut = true;
      }
    };
    if (options.capture === 'all') child.stdout?.on('data', keep);
    else child.stdout?.on('data', (chunk: Buffer) => (stdoutBytes += chunk.length));
    child.stderr?.on('data', keep);
    child.on('error', (error: NodeJS.ErrnoException) => finish({ code: null, signal: null, spawnError: error }));
    child.on('exit', () => {
      // A killed program's pipes may be held by a descendant that left the group: stop waiting for them.
      if (stopped) {
        child.stdout?.destroy();
        child.stderr?.destroy();
      }
    });
    // 'close' waits for the pipes, so all of the output is in.
    child.on('close', (code, sig) => finish({ code, signal: sig }));
    if (child.stdin) {
      // A program that does not read its stdin closes the pipe: that is its business, not a failure.
      child.stdin.once('error', () => {});
      child.stdin.end(options.stdin);
    }
  });
}
