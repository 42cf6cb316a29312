/** Defaults of the etcd adapter, in one place (like the core's src/defaults.ts). */

/** Prefix of every etcd key this storage uses. */
export const DEFAULT_ETCD_PREFIX = 'certkeeper/';
/** The etcd client port on this machine, as etcd itself defaults to. */
export const DEFAULT_ETCD_ENDPOINT = 'http://127.0.0.1:2379';
/**
 * Longest a single etcd call may take before it fails with ERR_STORAGE. A cluster
 * without a leader, or gone, must not hold a name's lock and an order slot for
 * minutes; kept well under the default lock lease (10 s) so a refresh can fail and retry in time.
 */
export const DEFAULT_OPERATION_TIMEOUT_MS = 5_000;
/** Keys fetched per round trip when listing. */
export const LIST_PAGE_SIZE = 1000;
