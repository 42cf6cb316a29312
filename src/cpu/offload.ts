/**
 * Runs CPU-heavy pure functions (key and CSR generation, internal-CA leaf
 * signing) on one worker thread, so their milliseconds of JavaScript ASN.1
 * work do not run on the event loop that answers TLS handshakes.
 *
 * The worker starts on first use and is unref'd while idle (it never keeps
 * the process alive); close() terminates it. When no worker can be started
 * (e.g. the package was bundled into one file without src/cpu/worker), the
 * tasks run on the caller's thread instead, as they would without offloading.
 */
import type { Worker } from 'node:worker_threads';
import type { KeyAndCsr } from '../acme/csr.js';
import { CertificateInvalidError, CertKeeperError, ClosedError, ERROR_CODES, type ErrorCode } from '../errors.js';
import type { LeafSigningRequest } from '../issuers/leaf-signing.js';
import type { KeyType } from '../kinds.js';
import type { Logger } from '../logger.js';
import type { Identifier } from '../names.js';
import { cpuTasks, type CpuTaskName, type SerializedError, type WorkerResponse } from './tasks.js';
import { Closable } from '../lifecycle.js';
import { lazyModule } from '../lazy.js';

// Loaded on first use (lazy.ts): a first obtain signs on this thread; only renewals start the worker.
const workerThreads = lazyModule<typeof import('node:worker_threads')>('node:worker_threads');

export interface CpuOffloadOptions {
  logger: Logger;
  /** Starts the worker; default: src/cpu/worker next to this module. For tests. */
  spawn?: () => Worker;
}

interface Pending {
  task: CpuTaskName;
  input: unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export class CpuOffload extends Closable {
  readonly #log: Logger;
  readonly #spawn: () => Worker;
  #worker: Worker | undefined;
  /** The worker has loaded its modules (it said so). */
  #online = false;
  /** The worker could not start: every task runs on this thread from now on. */
  #inThread = false;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  #tasksRun = 0;

  constructor(options: CpuOffloadOptions) {
    super('CpuOffload');
    this.#log = options.logger;
    this.#spawn = options.spawn ?? spawnDefaultWorker;
  }

  /** Tasks answered so far, and whether they now run on this thread. */
  get stats(): { tasks: number; inThread: boolean; workerRunning: boolean } {
    return { tasks: this.#tasksRun, inThread: this.#inThread, workerRunning: this.#worker !== undefined };
  }

  async keyAndCsr(identifiers: Identifier[], keyType: KeyType): Promise<KeyAndCsr> {
    const result = (await this.#run('keyAndCsr', { identifiers, keyType })) as KeyAndCsr;
    // Structured clone turns a Buffer into a plain Uint8Array.
    return { ...result, csr: Buffer.from(result.csr.buffer, result.csr.byteOffset, result.csr.byteLength) };
  }

  async signLeaf(request: LeafSigningRequest): Promise<Uint8Array> {
    return (await this.#run('signLeaf', request)) as Uint8Array;
  }

  /** Terminates the worker; tasks still running reject with ClosedError. Idempotent. */
  protected async onClose(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(new ClosedError('CpuOffload'));
    await worker?.terminate();
  }

  #run(task: CpuTaskName, input: unknown): Promise<unknown> {
    if (this.closed) return Promise.reject(new ClosedError('CpuOffload'));
    if (this.#inThread) return this.#runHere(task, input);
    const worker = this.#worker ?? this.#start();
    if (!worker) return this.#runHere(task, input);
    return new Promise((resolve, reject) => {
      const id = this.#nextId++;
      this.#pending.set(id, { task, input, resolve, reject });
      if (this.#pending.size === 1) worker.ref();
      worker.postMessage({ id, task, input });
    });
  }

  async #runHere(task: CpuTaskName, input: unknown): Promise<unknown> {
    const run = cpuTasks[task] as (input: unknown) => Promise<unknown>;
    const value = await run(input);
    this.#tasksRun++;
    return value;
  }

  #start(): Worker | undefined {
    let worker: Worker;
    try {
      worker = this.#spawn();
    } catch (error) {
      this.#fallBack(error);
      return undefined;
    }
    this.#worker = worker;
    this.#online = false;
    worker.unref();
    worker.on('message', (response: WorkerResponse) => this.#answer(worker, response));
    worker.on('error', (error) => this.#lost(worker, error));
    worker.on('exit', (code) => {
      if (!this.closed && this.#worker === worker) this.#lost(worker, new Error(`the worker thread exited with code ${code}`));
    });
    return worker;
  }

  #answer(worker: Worker, response: WorkerResponse): void {
    if ('ready' in response) {
      this.#online = true;
      return;
    }
    const pending = this.#pending.get(response.id);
    if (!pending) return;
    this.#pending.delete(response.id);
    if (this.#pending.size === 0) worker.unref();
    this.#tasksRun++;
    if (response.ok) pending.resolve(response.value);
    else pending.reject(rebuildError(response.error));
  }

  /** The worker failed to load or died: its tasks run here (they are pure), and later ones too if it never came up. */
  #lost(worker: Worker, error: unknown): void {
    if (this.#worker !== worker) return;
    this.#worker = undefined;
    void worker.terminate().catch(() => undefined);
    if (!this.#online) this.#fallBack(error);
    else this.#log.warn({ err: error }, 'cpu worker thread died; starting another on next use');
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) this.#runHere(p.task, p.input).then(p.resolve, p.reject);
  }

  #fallBack(error: unknown): void {
    this.#inThread = true;
    this.#log.warn({ err: error }, 'cannot start the cpu worker thread; signing and key generation run on the main thread');
  }
}

function spawnDefaultWorker(): Worker {
  // The worker needs none of the parent's flags, and some (e.g. --input-type) would stop it from loading.
  const execArgv: string[] = [];
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    // Running from the TypeScript sources (tests, benchmarks, `npm run demo`): loader hooks are per thread, so register tsx here too.
    const url = new URL('../cpu/worker.ts', here).href;
    return new workerThreads.Worker(`import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(url)}); });`, { eval: true, execArgv });
  }
  // '../cpu/': this code is in src/cpu/ or, bundled (scripts/bundle.mjs), in dist/chunks/; the worker is dist/cpu/worker.js.
  return new workerThreads.Worker(new URL('../cpu/worker.js', here), { execArgv });
}

function rebuildError(error: SerializedError): Error {
  if (error.code === 'ERR_CERTIFICATE_INVALID') return new CertificateInvalidError(error.message);
  if (error.code !== undefined && error.code in ERROR_CODES) return new CertKeeperError(error.code as ErrorCode, error.message);
  const rebuilt = new Error(error.message);
  rebuilt.name = error.name;
  return rebuilt;
}
