/**
 * Test side of fixtures/keeper-worker.mjs: spawns a worker, collects its JSON
 * reports, and kills it (SIGKILL on request, and always on process exit).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { libraryRunner } from '../helpers/built.js';
import { onJsonLines } from '../helpers/json-lines.js';
import { exitOnSignals } from '../helpers/exit-on-signal.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'keeper-worker.mjs');

export interface KeeperWorkerConfig {
  storageDir: string;
  lockStaleMs: number;
  directoryUrl: string;
  caPem: string;
  names: string[];
  /** After "ready", wait for a `churn` line on stdin, then force-renew the names one after another until killed. */
  churn?: boolean;
}
const live = new Set<ChildProcess>();
exitOnSignals();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface WorkerReport {
  event: string;
  [field: string]: unknown;
}

export class KeeperWorker {
  readonly child: ChildProcess;
  readonly reports: WorkerReport[] = [];
  readonly exited: Promise<void>;
  stderr = '';
  #waiters = new Set<() => void>();

  constructor(config: KeeperWorkerConfig) {
    const runner = libraryRunner();
    this.child = spawn(process.execPath, [...runner.execArgv, SCRIPT], {
      env: { ...process.env, CERTKEEPER_KEEPER_WORKER: JSON.stringify(config), CERTKEEPER_LIBRARY_BASE: runner.libraryBase },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    live.add(this.child);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', () => {
        live.delete(this.child);
        this.#notify();
        resolve();
      });
    });
    onJsonLines(
      this.child.stdout,
      (report) => {
        this.reports.push(report as WorkerReport);
        this.#notify();
      },
      (line) => {
        this.stderr += `(stdout) ${line}\n`;
      },
    );
    this.child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      this.stderr += text;
    });
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  /** Resolves with the first report of this event; rejects if the worker exits or reports an error first. */
  waitFor(event: string, timeoutMs = 60_000): Promise<WorkerReport> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.reports.find((r) => r.event === event);
        const failed = this.reports.find((r) => r.event === 'error');
        if (found) done(() => resolve(found));
        else if (failed) done(() => reject(new Error(`worker failed: ${String(failed.message)}\n${this.stderr}`)));
        else if (this.child.exitCode !== null || this.child.signalCode !== null) done(() => reject(new Error(`worker exited before "${event}"\n${this.stderr}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`no "${event}" from the worker in ${timeoutMs} ms\n${this.stderr}`))), timeoutMs);
      const done = (fn: () => void): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        fn();
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** Sends one command line to the worker's stdin. */
  send(line: string): void {
    this.child.stdin?.write(`${line}\n`);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await this.exited;
  }

  /** Clean stop: SIGTERM (the worker closes its keeper), SIGKILL after 10 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    this.child.kill('SIGTERM');
    await this.exited;
    clearTimeout(timer);
  }
}
