/**
 * Locks on etcd leases, as primitives for certkeeper's LeaseLocks (which does
 * the waiting, refreshing and releasing the same way for every backend).
 *
 * One grant = one etcd lease with the lock key attached to it:
 *   acquire  LeaseGrant, then a transaction "create the lock key if it does not exist" (put with the lease)
 *   refresh  LeaseKeepAlive once
 *   release  LeaseRevoke (which deletes the attached key; a lease already gone is fine)
 *   isHeld   the lock key still exists with the create revision of our grant
 *
 * The lock key's create revision is the grant's fencing token: etcd revisions
 * only grow, so every later grant of the same lock has a greater one, and a
 * transaction comparing it is refused once the key was recreated by anyone.
 *
 * Why a local deadline as well: etcd extends every lease when a new leader is
 * elected (a restarted server included), so a lease does not expire while the
 * cluster is unreachable. A holder that could not refresh for a whole TTL can
 * no longer know whether it holds the lock, so it treats it as lost.
 */
import type { LeaseBackend } from 'certkeeper/storage';
import type { Etcd3 } from 'etcd3';

export interface Grant {
  readonly token: string;
  readonly leaseId: string;
  /** The lock key's create revision: the fencing token of this grant. */
  readonly revision: string;
  /** performance.now() after which the lease may have expired: request sent + TTL the server granted. */
  validUntil: number;
}

/** How the backend reaches etcd: every call bounded and wrapped into StorageError by `run`. */
export interface EtcdCalls {
  readonly client: Etcd3;
  run<T>(operation: string, key: string, fn: (options: { deadline: Date }) => Promise<T>): Promise<T>;
  lockKey(name: string): Buffer;
}

export class EtcdLeases {
  readonly #calls: EtcdCalls;
  readonly #grants = new Map<string, Grant>();

  constructor(calls: EtcdCalls) {
    this.#calls = calls;
  }

  /** The grant this instance holds for `name`, while its lease can still be valid. */
  current(name: string): Grant | undefined {
    const grant = this.#grants.get(name);
    return grant !== undefined && performance.now() < grant.validUntil ? grant : undefined;
  }

  backend(): LeaseBackend {
    return {
      acquire: (name, token, ttlMs) => this.#acquire(name, token, ttlMs),
      refresh: (name, token) => this.#refresh(name, token),
      release: (name, token) => this.#release(name, token),
      isHeld: (name, token) => this.#isHeld(name, token),
    };
  }

  async #acquire(name: string, token: string, ttlMs: number): Promise<boolean> {
    const { client, run, lockKey } = this.#calls;
    const sent = performance.now();
    const lease = await run('lock', name, (o) => client.leaseClient.leaseGrant({ TTL: Math.ceil(ttlMs / 1000) }, o));
    const key = lockKey(name);
    let result;
    try {
      result = await run('lock', name, (o) =>
        client.kv.txn(
          {
            compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
            success: [{ request_put: { key, value: Buffer.from(token), lease: lease.ID } }],
          },
          o,
        ),
      );
    } catch (error) {
      await this.#revoke(name, lease.ID).catch(() => undefined);
      throw error;
    }
    if (!result.succeeded) {
      // Taken: the lease we made for it is not needed (it would expire on its own).
      await this.#revoke(name, lease.ID).catch(() => undefined);
      return false;
    }
    // The put created the key, so its create revision is the transaction's revision.
    this.#grants.set(name, { token, leaseId: lease.ID, revision: result.header.revision, validUntil: sent + Number(lease.TTL) * 1000 });
    return true;
  }

  async #refresh(name: string, token: string): Promise<boolean> {
    const grant = this.#grants.get(name);
    if (grant === undefined || grant.token !== token) return false;
    const sent = performance.now();
    // Given up once: etcd may still answer for the lease later (it extends leases after an election), but work
    // under it may already have stopped, so it is never taken back.
    if (sent >= grant.validUntil) return false;
    let ttl: number;
    try {
      ttl = await this.#keepAliveOnce(name, grant.leaseId);
    } catch (error) {
      // Past the deadline nobody can say whether the lease still exists: lost (LeaseLocks logs it). Before it: retried.
      if (performance.now() >= grant.validUntil) return false;
      throw error;
    }
    if (ttl <= 0) {
      grant.validUntil = 0;
      return false;
    }
    grant.validUntil = sent + ttl * 1000;
    return true;
  }

  async #release(name: string, token: string): Promise<void> {
    const grant = this.#grants.get(name);
    if (grant === undefined || grant.token !== token) return;
    this.#grants.delete(name);
    await this.#revoke(name, grant.leaseId);
  }

  async #isHeld(name: string, token: string): Promise<boolean> {
    const grant = this.current(name);
    if (grant === undefined || grant.token !== token) return false;
    const { client, run, lockKey } = this.#calls;
    const found = await run('check lock', name, (o) => client.kv.range({ key: lockKey(name) }, o));
    const kv = found.kvs[0];
    return kv !== undefined && kv.create_revision === grant.revision && kv.value.toString() === token;
  }

  async #revoke(name: string, leaseId: string): Promise<void> {
    const { client, run } = this.#calls;
    try {
      await run('unlock', name, (o) => client.leaseClient.leaseRevoke({ ID: leaseId }, o));
    } catch (error) {
      // Expired or revoked already: the key went with it.
      if (/lease not found/i.test(String((error as { cause?: unknown }).cause ?? error))) return;
      throw error;
    }
  }

  /** One LeaseKeepAlive round trip on its own stream; the TTL etcd answers, 0 when the lease is gone. */
  #keepAliveOnce(name: string, leaseId: string): Promise<number> {
    const { client, run } = this.#calls;
    return run('refresh lock', name, async (o) => {
      const stream = await client.leaseClient.leaseKeepAlive(o);
      try {
        return await new Promise<number>((resolve, reject) => {
          stream.on('data', (response) => resolve(Number(response.TTL)));
          stream.on('error', reject);
          stream.on('end', () => reject(new Error('keep-alive stream ended without an answer')));
          stream.write({ ID: leaseId });
        });
      } finally {
        stream.cancel();
      }
    });
  }
}
