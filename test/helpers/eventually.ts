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

/**
 * Polls `condition` until it holds, at most `tries` times `delayMs` apart; throws `what` otherwise.
 * (Not assert.ok inside eventually: a failing assert.ok without a message reads and parses the
 * test's source to describe itself, which is slow enough to starve the test when repeated.)
 */
export async function until(condition: () => boolean, what: string, tries = 400, delayMs = 50): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
  throw new Error(`gave up waiting: ${what}`);
}
