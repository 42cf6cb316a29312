import type { Clock, TimerHandle } from '../clock.js';
import type { Lifecycle } from '../lifecycle.js';

/**
 * Closes `work`, which waits for everything it tracks, but gives up after `timeoutMs`: a caller's promise settles
 * on abort while the shared obtain behind it (an issuer or a storage call that ignores the signal) may still run.
 * Resolves true when it gave up.
 */
export async function drainWithin(work: Lifecycle, timeoutMs: number, clock: Clock): Promise<boolean> {
  let timer: TimerHandle | undefined;
  // The clock's timers do not keep the process alive, but a caller is awaiting close(): this does, until it resolves.
  const keepAlive = setInterval(() => undefined, 60_000);
  try {
    return await Promise.race([
      work.close().then(() => false),
      new Promise<boolean>((resolve) => {
        timer = clock.setTimer(() => resolve(true), timeoutMs);
      }),
    ]);
  } finally {
    timer?.cancel();
    clearInterval(keepAlive);
  }
}
