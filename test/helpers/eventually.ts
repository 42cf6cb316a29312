/**
 * Retries `attempt` until it resolves, at most `tries` times `delayMs` apart,
 * then rethrows the last error. For "works again once the server is back":
 * a bounded count of tries, not a time assertion.
 */
export async function eventually<T>(attempt: () => Promise<T>, tries = 60, delayMs = 250): Promise<T> {
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      return await attempt();
    } catch (error) {
      last = error;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
  throw last;
}

/** Settles every promise and returns the outcomes (value or error), for writes in flight when a server died. */
export function outcomes<T>(promises: readonly Promise<T>[]): Promise<Array<{ ok: true; value: T } | { ok: false; error: unknown }>> {
  return Promise.all(promises.map((p) => p.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }))));
}
