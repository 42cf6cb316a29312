import { Redis } from 'ioredis';

/** The Redis the tests use; override with CERTKEEPER_TEST_REDIS_URL. */
export const REDIS_URL = process.env.CERTKEEPER_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * Returns false when Redis answers, else a skip reason saying how to start it
 * (printed). On CI (CI=true) an unreachable Redis fails the run instead.
 */
export async function redisSkipReason(): Promise<string | false> {
  const probe = new Redis(REDIS_URL, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 2000 });
  probe.on('error', () => {});
  try {
    await probe.connect();
    await probe.ping();
    return false;
  } catch (error) {
    const reason =
      `Redis is not reachable at ${REDIS_URL} (${error instanceof Error ? error.message : String(error)}); ` +
      'start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379';
    if (process.env.CI === 'true') throw new Error(`CI requires the Redis tests to run: ${reason}`);
    console.error(`# skipping: ${reason}`);
    return reason;
  } finally {
    probe.disconnect();
  }
}

/** A client for inspecting raw data and cleaning up; deletes every key under `prefix` on cleanup. */
export async function deleteByPrefix(client: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await client.del(...keys);
  } while (cursor !== '0');
}
