/**
 * Bench applications (bench/apps/*.mjs) started as users start theirs: `node <app>.mjs ...` in
 * the project that installed the packed tarball (bench/lib/packed.ts), no tsx, no IPC. Each
 * prints JSON lines on stdout; the parent times from just before spawn. Every process started
 * here is killed on stop(), and on exit as a last resort.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import tls from 'node:tls';

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface AppProcess {
  child: ChildProcess;
  /** performance.now() just before spawn. */
  startedAt: number;
  /** The first JSON line the app printed, and performance.now() when it arrived. */
  firstLine: Promise<{ at: number; data: Record<string, unknown> }>;
  output(): string;
  stop(): Promise<void>;
}

export function startApp(cwd: string, script: string, args: string[], execArgv: string[] = []): AppProcess {
  const startedAt = performance.now();
  const child = spawn(process.execPath, [...execArgv, script, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let output = '';
  let stdout = '';
  const firstLine = new Promise<{ at: number; data: Record<string, unknown> }>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      const at = performance.now();
      stdout += c;
      output = (output + c).slice(-20_000);
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (line !== undefined && stdout.includes('\n')) {
        try {
          resolve({ at, data: JSON.parse(line) as Record<string, unknown> });
        } catch {}
      }
    });
    child.once('exit', (code, signal) => reject(new Error(`${script} exited (${code ?? signal}) before reporting: ${output.slice(-500)}`)));
  });
  firstLine.catch(() => {});
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (output = (output + c).slice(-20_000)));
  child.on('exit', () => live.delete(child));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  return { child, startedAt, firstLine, output: () => output, stop };
}

/** Wall time of `node -e 0` (seconds), the floor of any Node process start. */
export function bareNodeSeconds(): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error('node -e 0 failed');
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** One handshake that verifies the served chain against `caPem` for `servername` (and its CN). */
export function verifiedHandshake(port: number, servername: string, caPem: string, timeoutMs = 5000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca: caPem, minVersion: 'TLSv1.2' });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('secureConnect', () => done(socket.authorized && socket.getPeerCertificate().subject?.CN === servername));
    socket.once('error', () => done(false));
  });
}

/** Polls every `intervalMs` until `check` passes, the deadline passes or `gaveUp` says so; resolves performance.now() of success, or undefined. */
export async function pollUntil(check: () => Promise<boolean>, deadlineMs: number, gaveUp: () => boolean, intervalMs = 5): Promise<number | undefined> {
  const end = performance.now() + deadlineMs;
  while (performance.now() < end && !gaveUp()) {
    if (await check()) return performance.now();
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return undefined;
}
