/** Worker-thread entry of CpuOffload: runs one task per message and answers with its result or error. */
import { parentPort } from 'node:worker_threads';
import { cpuTasks, type WorkerRequest, type WorkerResponse } from './tasks.js';

const port = parentPort;
if (!port) throw new Error('certkeeper cpu worker must run on a worker thread');

port.on('message', (request: WorkerRequest) => {
  void (async (): Promise<void> => {
    let response: WorkerResponse;
    try {
      const run = cpuTasks[request.task] as (input: unknown) => Promise<unknown>;
      response = { id: request.id, ok: true, value: await run(request.input) };
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      // Messages only: causes may carry inputs (a CSR is harmless, but keep the rule simple).
      response = { id: request.id, ok: false, error: { name: e.name, code: (e as { code?: string }).code, message: e.message } };
    }
    port.postMessage(response);
  })();
});

// Loaded: from now on a failure is a crash, not a worker that cannot start.
port.postMessage({ ready: true });
