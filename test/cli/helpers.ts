import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { run } from '../../src/cli/program.js';
import { exitOnSignals } from '../helpers/exit-on-signal.js';

export const REPO_ROOT = new URL('../../', import.meta.url).pathname;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in this process with the given env (nothing from the real environment leaks in besides PATH/HOME). */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv = {}, options: { cwd?: string; signal?: AbortSignal } = {}): Promise<CliResult> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(Buffer.from(c)));
  stderr.on('data', (c: Buffer) => err.push(Buffer.from(c)));
  const stdin = new PassThrough();
  const code = await run(argv, {
    stdout,
    stderr,
    stdin,
    env: { HOME: process.env.HOME, PATH: process.env.PATH, ...env },
    cwd: options.cwd ?? process.cwd(),
    signal: options.signal ?? new AbortController().signal,
  });
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

const children = new Set<ChildProcess>();
exitOnSignals();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** Spawns the real bin through tsx, as `npm run demo` does. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: REPO_ROOT,
    env: { HOME: process.env.HOME, PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Resolves with the exit code and output of a spawned CLI. */
export function completion(child: ChildProcess): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code: code ?? (signal ? -1 : 0), stdout, stderr }));
  });
}

/** Waits until stdout of a spawned process matches `pattern`. */
export function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let text = '';
    let errText = '';
    const timer = setTimeout(() => done(new Error(`timed out waiting for ${pattern}; stdout: ${text}\nstderr: ${errText}`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      text += chunk.toString();
      const match = pattern.exec(text);
      if (match) done(undefined, match);
    };
    const onErr = (chunk: Buffer): void => {
      errText += chunk.toString();
    };
    const onExit = (code: number | null): void => done(new Error(`exited with ${code} before ${pattern}; stdout: ${text}\nstderr: ${errText}`));
    function done(error: Error | undefined, match?: RegExpExecArray): void {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(match as RegExpExecArray);
    }
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}
