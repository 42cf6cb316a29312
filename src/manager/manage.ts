/**
 * The two ways names enter management. manageSync: serve what is stored,
 * obtain what is missing, resolve when all are served (or reject listing the
 * failures). manageAsync: the same in the background, reported by events.
 * Either way a stored certificate is adopted before anything is ordered.
 */
import { DEFAULT_EAGER_LOAD_LIMIT, DEFAULT_LOAD_CONCURRENCY } from '../defaults.js';
import { ManageError, type NameFailure } from '../errors.js';
import { Semaphore } from '../limits/concurrency.js';
import type { ManagedRecord } from '../renewal/managed-record.js';
import { renewInBackground, renewSoon, type KeeperParts } from './parts.js';
import type { ListedSets } from './stored-sets.js';
import type { WarmUp } from './warm-up.js';

export async function manageNow(parts: KeeperParts, warmUp: WarmUp, records: ManagedRecord[]): Promise<void> {
  const { stored, failures, scheduler, pipeline, signal } = parts;
  // Many names: one listing per issuer says which are stored, and their sidecars are read in the
  // background, so start-up is proportional to what is served, not to what is stored.
  const listed = records.length > DEFAULT_EAGER_LOAD_LIMIT ? await stored.list(records) : undefined;
  const failing = await failures.list();
  const failed: NameFailure[] = [];
  const loads = new Semaphore(DEFAULT_LOAD_CONCURRENCY);
  // A listed name is only queued for the warm-up: done here in a plain loop, since a promise and a closure
  // per name cost a million of each (hundreds of MB, seconds of CPU) for a million stored names.
  const rest = listed ? records.filter((record) => !queueListed(record)) : records;
  function queueListed(record: ManagedRecord): boolean {
    try {
      if (!stored.markListed(record, listed as ListedSets)) return false;
    } catch {
      return false; // reported as the name's failure below, where markListed throws again
    }
    warmUp.add(record);
    return true;
  }
  await Promise.all(
    rest.map(async (record) => {
      try {
        if (listed ? stored.markListed(record, listed) : await loads.run(() => stored.load(record, { eager: true }))) {
          if (listed) {
            warmUp.add(record);
            return;
          }
          await failures.restore(record, failing);
          scheduler.scheduleNext(record);
          if (scheduler.isDue(record)) renewSoon(parts, record);
          return;
        }
        // A backoff persisted before a restart, or by a peer, and a final refusal: do not ask the CA earlier.
        const blocked = await failures.restore(record, failing);
        if (blocked) throw blocked;
        await pipeline.run(record, { renewal: false, force: false, signal });
      } catch (error) {
        await failures.note(record, error, false, signal);
        failed.push({ names: [...record.names], error: error as Error });
        scheduler.scheduleNext(record);
      }
    }),
  );
  if (failed.length > 0) throw new ManageError(failed);
}

export function manageInBackground(parts: KeeperParts, records: ManagedRecord[]): void {
  const { stored, failures, scheduler, signal, log } = parts;
  const eager = records.length <= DEFAULT_EAGER_LOAD_LIMIT;
  const loads = new Semaphore(DEFAULT_LOAD_CONCURRENCY);
  // One listing for the whole call, not one read per name.
  const failing = failures.list();
  for (const record of records) {
    parts.track(
      (async () => {
        try {
          await loads.run(() => stored.load(record, { eager }));
          await failures.restore(record, await failing);
        } catch (error) {
          // A storage that cannot be read is a failure of the name like any other: backed off, reported.
          await failures.note(record, error, record.serialNumber !== undefined, signal);
          scheduler.scheduleNext(record);
          return;
        }
        if (record.finalError || !scheduler.isDue(record)) {
          scheduler.scheduleNext(record);
          return;
        }
        await renewInBackground(parts, record);
      })().catch((error: unknown) => log.error({ err: error, names: record.names }, 'background manage failed')),
    );
  }
}
