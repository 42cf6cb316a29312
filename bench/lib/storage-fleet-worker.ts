/**
 * One fleet member for bench/storage-locks.ts: a CertKeeper with the internal
 * issuer on the storage a URL names (storageFromUrl, the package as installed).
 * Reports `ready`, waits for `go` on stdin, obtains every name (manageSync),
 * then reports `done` with how many certificates THIS process issued.
 *
 * Config: CERTKEEPER_BENCH_WORKER = {"id","url","names":[...],"lockPollMs"?} (JSON).
 */
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { CertKeeper, ManageError, storageFromUrl } from 'certkeeper';

const config = JSON.parse(process.env.CERTKEEPER_BENCH_WORKER ?? '') as { id: string; url: string; names: string[]; lockPollMs?: number };
const report = (event: string, fields: Record<string, unknown> = {}): void => {
  process.stdout.write(`${JSON.stringify({ event, id: config.id, ...fields })}\n`);
};

// Warnings only, on stderr: stdout carries the reports.
const logger = pino({ level: 'warn', base: { worker: config.id } }, pino.destination(2));
// lockPollMs is a lease-lock option (Redis, PostgreSQL, etcd); FileStorage has its own backoff.
const remote = /^[a-z][a-z0-9+.-]*:\/\//i.test(config.url) && !config.url.startsWith('file:');
const adapterOptions = remote && config.lockPollMs !== undefined ? { lockPollMs: config.lockPollMs } : undefined;
const storage = await storageFromUrl(config.url, { logger, adapterOptions });
const keeper = new CertKeeper({
  storage,
  issuers: [{ type: 'internal' }],
  challenges: { http01: { listener: false }, tlsAlpn01: false },
  renewalPacing: false,
  logger,
});
let obtained = 0;
keeper.on('cert_obtained', () => obtained++);

const lines = createInterface({ input: process.stdin });
const go = new Promise<void>((resolve) => lines.once('line', () => resolve()));
report('ready');
await go;
const start = performance.now();
let failed = 0;
try {
  await keeper.manageSync(config.names);
} catch (error) {
  failed = error instanceof ManageError ? error.failures.length : config.names.length;
  process.stderr.write(`worker ${config.id}: ${(error as Error).message}\n`);
}
report('done', { obtained, failed, ms: performance.now() - start });
await keeper.close();
await storage.close?.();
lines.close();
