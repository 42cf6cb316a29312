/**
 * A test server process (etcd, redis-server) that a test owns: started on free
 * loopback ports, and stopped, killed, frozen or restarted on the same ports and
 * data directory while the code under test talks to it. A process 'exit' hook
 * kills whatever is left, so a failing test leaves no server behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { exitOnSignals } from './exit-on-signal.js';

const live = new Set<ChildProcess>();
exitOnSignals();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface ServerProcessSpec {
  /** Shown in errors. */
  name: string;
  bin: string;
  args: readonly string[];
  /** Resolves true once the server answers. */
  ready: () => Promise<boolean>;
  readyTimeoutMs?: number;
}

export class ServerProcess {
  readonly #spec: ServerProcessSpec;
  #child: ChildProcess | undefined;
  #output = '';

  constructor(spec: ServerProcessSpec) {
    this.#spec = spec;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  output(): string {
    return this.#output;
  }

  /** Starts the process (again, after stop or kill) and waits until it answers. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.#spec.name} is already running`);
    const child = spawn(this.#spec.bin, [...this.#spec.args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    live.add(child);
    const keep = (text: string): void => {
      this.#output = (this.#output + text).slice(-20_000);
    };
    child.stdout?.setEncoding('utf8').on('data', keep);
    child.stderr?.setEncoding('utf8').on('data', keep);
    child.on('error', (error) => keep(`spawn error: ${error.message}\n`));
    child.on('exit', () => live.delete(child));
    const deadline = Date.now() + (this.#spec.readyTimeoutMs ?? 20_000);
    for (let delay = 20; ; delay = Math.min(delay * 2, 200)) {
      if (!this.running) throw new Error(`${this.#spec.name} exited while starting:\n${this.#output}`);
      if (await this.#spec.ready().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`${this.#spec.name} not ready in time:\n${this.#output}`);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  /** SIGKILL: a crash, nothing flushed beyond what the server already wrote. */
  kill(): Promise<void> {
    return this.#end('SIGKILL');
  }

  /** SIGTERM (SIGKILL after 5 s): an orderly shutdown. */
  stop(): Promise<void> {
    return this.#end('SIGTERM');
  }

  /**
   * SIGSTOP: the server keeps its connections but answers nothing, as a hung or partitioned one. Resolves once
   * every thread is stopped (a multi-threaded server such as etcd could still answer a request sent at once).
   */
  async freeze(): Promise<void> {
    const pid = this.#child?.pid;
    if (pid === undefined) return;
    this.#child?.kill('SIGSTOP');
    for (let i = 0; i < 200; i++) {
      const states = readdirSync(`/proc/${pid}/task`, { withFileTypes: false }).map((tid) => {
        try {
          // The state follows the parenthesised command name: "pid (comm) S ...".
          return readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').replace(/^.*\) /s, '').charAt(0);
        } catch {
          return 'T'; // the thread ended
        }
      });
      if (states.every((state) => state === 'T' || state === 't')) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`${pid} did not stop after SIGSTOP`);
  }

  thaw(): void {
    this.#child?.kill('SIGCONT');
  }

  async #end(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGCONT');
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}
