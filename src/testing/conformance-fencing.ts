/**
 * Conformance cases for fenced writes (FencedWriter): run for every storage
 * that has them, skipped for one that has not. The last case is the proof
 * that a holder frozen between its lease check and its write cannot
 * overwrite the newer set a peer stored after taking its lock over.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildCertificateMeta, loadCertificateSet, saveCertificateSet, type CertificateSet } from '../storage/certificates.js';
import { lockedWriteHooks } from '../storage/fenced.js';
import { hasFencedWrites, hasLockLeaseCheck, type Storage } from '../storage/types.js';
import { LOCK_WAIT_LIMIT_MS, expectCode, selfSignedPair } from './conformance-helpers.js';

export interface FencingContext {
  open: () => Promise<Storage>;
  uniqueLock: () => string;
  root: string;
  issuerKey: string;
  runId: string;
  staleLockMs?: number;
  abandonLock?: (storage: Storage, lockName: string) => Promise<void>;
}

export function fencingCases(ctx: FencingContext): void {
  const { open, uniqueLock, root, issuerKey, runId, staleLockMs, abandonLock } = ctx;
  const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

  describe('fenced writes', () => {
    it('applies every write of the list while the lock is held, and another instance sees them', async (t) => {
      const a = await open();
      const b = await open();
      if (!hasFencedWrites(a)) return t.skip('no writeFenced');
      const lock = uniqueLock();
      const p = `${root}/fenced/applied`;
      await a.store(`${p}/old/x`, bytes('x'));
      await a.store(`${p}/old/y/z`, bytes('z'));
      await a.lock(lock, { timeoutMs: LOCK_WAIT_LIMIT_MS });
      try {
        await a.writeFenced(lock, [
          { key: `${p}/one`, value: bytes('1') },
          { key: `${p}/two`, value: new Uint8Array([0, 255, 1]) },
          { key: `${p}/old`, delete: true },
          { key: `${p}/never-there`, delete: true },
        ]);
      } finally {
        await a.unlock(lock);
      }
      assert.equal((await b.load(`${p}/one`)).toString('utf8'), '1');
      assert.deepEqual([...(await b.load(`${p}/two`))], [0, 255, 1]);
      assert.equal(await b.exists(`${p}/old/x`), false);
      assert.equal(await b.exists(`${p}/old/y/z`), false);
    });

    it('refuses, writing nothing, when the lock is not held, held by another instance, or released', { timeout: 60_000 }, async (t) => {
      const a = await open();
      const b = await open();
      if (!hasFencedWrites(a) || !hasFencedWrites(b)) return t.skip('no writeFenced');
      const lock = uniqueLock();
      const key = `${root}/fenced/refused`;
      const write = [{ key, value: bytes('must not land') }];
      await expectCode(a.writeFenced(lock, write), 'ERR_LOCK_LOST');
      await b.lock(lock, { timeoutMs: LOCK_WAIT_LIMIT_MS });
      await expectCode(a.writeFenced(lock, write), 'ERR_LOCK_LOST');
      await b.unlock(lock);
      await expectCode(b.writeFenced(lock, write), 'ERR_LOCK_LOST');
      assert.equal(await a.exists(key), false);
    });

    it(
      'refuses the write of a holder frozen between its lease check and its write while a peer took the lock over and stored a newer set',
      { timeout: 60_000 + (staleLockMs ?? 0) * 3, skip: abandonLock && staleLockMs ? false : 'needs abandonLock and staleLockMs' },
      async (t) => {
        if (!abandonLock || !staleLockMs) return;
        const holder = await open();
        const peer = await open();
        if (!hasFencedWrites(holder) || !hasLockLeaseCheck(holder)) return t.skip('no writeFenced');
        const lock = uniqueLock();
        const certName = `fenced-${runId}.example.test`;
        const set = async (): Promise<CertificateSet> => {
          const { certPem, keyPem } = await selfSignedPair([certName]);
          return { certPem, keyPem, meta: buildCertificateMeta({ certPem, keyPem, issuerKey }) };
        };
        const [first, peers, late] = [await set(), await set(), await set()];
        await holder.lock(lock, { timeoutMs: LOCK_WAIT_LIMIT_MS });
        await saveCertificateSet(holder, first, { lock });

        let frozen = false;
        lockedWriteHooks.afterLeaseCheck = async (name) => {
          if (name !== lock || frozen) return;
          frozen = true;
          // The holder passed its lease check and stops here (a GC pause, SIGSTOP). Its lease runs out,
          // the peer takes the lock over and stores its own, newer set.
          await abandonLock(holder, lock);
          await peer.lock(lock, { timeoutMs: staleLockMs * 3 + LOCK_WAIT_LIMIT_MS });
          await saveCertificateSet(peer, peers, { lock });
        };
        try {
          await expectCode(saveCertificateSet(holder, late, { lock }), 'ERR_LOCK_LOST');
        } finally {
          lockedWriteHooks.afterLeaseCheck = undefined;
        }
        assert.equal(frozen, true, 'the holder was frozen at its write');
        for (const reader of [holder, peer]) {
          const stored = await loadCertificateSet(reader, issuerKey, certName);
          assert.equal(stored.meta.serialNumber, peers.meta.serialNumber, 'the stored set is the peer\'s');
          assert.equal(stored.certPem, peers.certPem);
          assert.equal(stored.keyPem, peers.keyPem);
        }
        await peer.unlock(lock);
        await holder.unlock(lock);
      },
    );
  });
}
