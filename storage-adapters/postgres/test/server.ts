import pg from 'pg';

/** The database the tests use; override with CERTKEEPER_TEST_POSTGRES_URL. */
export const POSTGRES_URL = process.env.CERTKEEPER_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Returns false when PostgreSQL answers, else a skip reason saying how to start
 * it (printed). On CI (CI=true) an unreachable server fails the run instead.
 */
export async function postgresSkipReason(): Promise<string | false> {
  const probe = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 });
  probe.on('error', () => {});
  try {
    await probe.connect();
    await probe.query('SELECT 1');
    return false;
  } catch (error) {
    const reason =
      `PostgreSQL is not reachable at ${POSTGRES_URL} (${error instanceof Error ? error.message : String(error)}); ` +
      'start it with: pg_ctlcluster <version> main start (see pg_lsclusters), then: createdb -h 127.0.0.1 -U postgres test';
    if (process.env.CI === 'true') throw new Error(`CI requires the PostgreSQL tests to run: ${reason}`);
    console.error(`# skipping: ${reason}`);
    return reason;
  } finally {
    await probe.end().catch(() => {});
  }
}
