/**
 * A child running plain JavaScript with `node` (no tsx loader): for benchmarks
 * that measure the built package as users run it. Same protocol as
 * server-process.ts: first message = ready, then { cmd } requests answered by
 * { cmd: '<cmd>:done' }.
 */
import { fork, type ChildProcess } from 'node:child_process';

export interface PlainProcess {
  child: ChildProcess;
  ready: Record<string, unknown>;
  request<T = Record<string, unknown>>(cmd: string, extra?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

export async function startPlainProcess(script: string, args: string[], readyTimeoutMs: number, execArgv: string[] = []): Promise<PlainProcess> {
  const child = fork(script, args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.connected) child.send({ cmd: 'exit' });
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  let ready: Record<string, unknown>;
  try {
    ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`process not ready after ${readyTimeoutMs} ms`)), readyTimeoutMs);
      child.once('message', (m) => {
        clearTimeout(timer);
        resolve(m as Record<string, unknown>);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`process exited with ${code}`));
      });
    });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const request = <T>(cmd: string, extra: Record<string, unknown> = {}, timeoutMs = 600_000): Promise<T> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`${cmd}: no answer after ${timeoutMs} ms`)), timeoutMs);
      const onMessage = (message: { cmd: string; error?: string }): void => {
        if (message.cmd !== `${cmd}:done`) return;
        done(message.error ? new Error(message.error) : undefined, message as T);
      };
      const onExit = (code: number | null): void => done(new Error(`process exited with ${code} during ${cmd}`));
      const done = (error: Error | undefined, value?: T): void => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (error) reject(error);
        else resolve(value as T);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send({ cmd, ...extra });
    });
  return { child, ready, request, stop };
}
