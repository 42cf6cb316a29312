/**
 * Servers under test run in a child process, so its CPU time (and RSS) is the
 * servers' alone, apart from the client in the parent. The child answers
 * `{ cmd }` messages; the parent waits for the reply named in request().
 */
import { fork, type ChildProcess } from 'node:child_process';

export interface ServerProcess {
  child: ChildProcess;
  /** The child's first message (its ports and set-up figures). */
  ready: Record<string, unknown>;
  request<T = Record<string, unknown>>(cmd: string, extra?: Record<string, unknown>): Promise<T>;
  /** Asks the child to exit, then kills it if it has not after 10 s (a CPU profile takes a moment to write). */
  stop(): Promise<void>;
}

export async function startServerProcess(script: string, args: string[], readyTimeoutMs: number, extraExecArgv: string[] = []): Promise<ServerProcess> {
  const child = fork(script, args, { execArgv: ['--import', 'tsx', ...extraExecArgv], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.connected) child.send({ cmd: 'exit' });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  let ready: Record<string, unknown>;
  try {
    ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server process not ready after ${readyTimeoutMs} ms`)), readyTimeoutMs);
      child.once('message', (m) => {
        clearTimeout(timer);
        resolve(m as Record<string, unknown>);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server process exited with ${code}`));
      });
    });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const request = <T>(cmd: string, extra: Record<string, unknown> = {}): Promise<T> =>
    new Promise((resolve, reject) => {
      const onMessage = (message: { cmd: string }): void => {
        if (message.cmd !== `${cmd}:done`) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(message as T);
      };
      const onExit = (code: number | null): void => {
        child.off('message', onMessage);
        reject(new Error(`server process exited with ${code} during ${cmd}`));
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send({ cmd, ...extra });
    });
  return { child, ready, request, stop };
}

/** In the child: answers commands; `exit` closes through `onExit` and disconnects. */
export function serveCommands(handlers: Record<string, (message: Record<string, unknown>) => Promise<Record<string, unknown>> | Record<string, unknown>>, onExit: () => Promise<void>): void {
  let exiting: Promise<void> | undefined;
  const exit = (): Promise<void> => (exiting ??= onExit().catch(() => {}));
  process.on('message', (message: { cmd: string } & Record<string, unknown>) => {
    if (message.cmd === 'exit') {
      void exit().finally(() => {
        if (process.connected) process.disconnect();
      });
      return;
    }
    const handler = handlers[message.cmd];
    if (!handler) return;
    Promise.resolve(handler(message)).then(
      (reply) => process.send?.({ ...reply, cmd: `${message.cmd}:done` }),
      (error: unknown) => process.send?.({ cmd: `${message.cmd}:done`, error: String(error) }),
    );
  });
  // The parent died: do not linger.
  process.on('disconnect', () => {
    void exit().finally(() => process.exit(0));
  });
}

/** CPU meter for the child: start() then stop() gives microseconds of user+system time in between. */
export function cpuMeter(): { start(): void; stop(): number } {
  let at = process.cpuUsage();
  return {
    start: () => {
      at = process.cpuUsage();
    },
    stop: () => {
      const d = process.cpuUsage(at);
      return d.user + d.system;
    },
  };
}
