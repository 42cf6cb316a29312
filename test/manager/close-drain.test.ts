/**
 * close() resolves after work in flight has stopped, not when it has
 * signalled abort (issue 14, defect 12): an issuer that ignores its signal
 * and a slow storage write both finish before close() resolves; past
 * closeTimeoutMs, close() resolves anyway and a warn names what it abandoned.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InternalIssuer } from '../../src/issuers/internal.js';
import type { IssueRequest, Issuer, IssuedCertificate } from '../../src/issuers/types.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { FencedWrite } from '../../src/storage/types.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { captureLogger, silentLogger } from '../helpers/logging.js';

interface Gate {
  promise: Promise<void>;
  open: () => void;
}

function gate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Never looks at request.signal: it finishes when the test says so. */
class DeafIssuer implements Issuer {
  readonly key = 'deaf-issuer';
  readonly started = gate();
  readonly finish = gate();
  constructor(readonly events: string[]) {}
  async issue(_request: IssueRequest): Promise<IssuedCertificate> {
    this.started.open();
    await this.finish.promise;
    this.events.push('issuer finished');
    throw new Error('too late: the keeper is closing');
  }
}

/** Holds every write of a certificate until released. */
class SlowStorage extends MemoryStorage {
  readonly writing = gate();
  readonly release = gate();
  constructor(readonly events: string[]) {
    super();
  }
  override async store(key: string, value: Uint8Array): Promise<void> {
    if (key.startsWith('certificates/')) {
      this.writing.open();
      await this.release.promise;
      this.events.push(`stored ${key.slice(key.lastIndexOf('/') + 1)}`);
    }
    return super.store(key, value);
  }

  // A certificate set is one fenced write: held the same way, its stored values reported in order.
  override async writeFenced(lock: string, writes: readonly FencedWrite[]): Promise<void> {
    if (writes.some((w) => w.key.startsWith('certificates/'))) {
      this.writing.open();
      await this.release.promise;
      for (const w of writes) if (!('delete' in w)) this.events.push(`stored ${w.key.slice(w.key.lastIndexOf('/') + 1)}`);
    }
    return super.writeFenced(lock, writes);
  }
}

const challenges = { http01: false, tlsAlpn01: { listener: false } } as const;

/**
 * Gives a close() that does not wait for work ample time to resolve (it took
 * about 20 ms before the fix); a close() that waits never resolves here, so
 * this bounds how long a regression takes to show, not what passes.
 */
async function settle(closed?: Promise<unknown>): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
  if (closed) await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 1_000))]);
}

describe('close() waits for work in flight', () => {
  test('an issuer ignoring its abort signal finishes before close() resolves', async () => {
    const events: string[] = [];
    const issuer = new DeafIssuer(events);
    const keeper = new CertKeeper({ storage: new MemoryStorage(), issuers: [issuer], logger: silentLogger(), challenges });
    keeper.manageAsync(['deaf.example.test']);
    await issuer.started.promise;
    const closed = keeper.close().then(() => events.push('close resolved'));
    await settle(closed);
    assert.deepEqual(events, [], 'close() has not resolved while the issuer runs');
    issuer.finish.open();
    await closed;
    assert.deepEqual(events, ['issuer finished', 'close resolved']);
  });

  test('a slow storage write finishes before close() resolves', async () => {
    const events: string[] = [];
    const storage = new SlowStorage(events);
    const keeper = new CertKeeper({ storage, issuers: [{ type: 'internal' }], logger: silentLogger(), challenges });
    keeper.manageAsync(['slow-store.example.test']);
    await storage.writing.promise;
    const closed = keeper.close().then(() => events.push('close resolved'));
    await settle(closed);
    assert.equal(events.length, 0, 'close() has not resolved while a write is pending');
    storage.release.open();
    await closed;
    assert.equal(events.at(-1), 'close resolved');
    assert.ok(events.length > 1 && events.slice(0, -1).every((e) => e.startsWith('stored ')), events.join(', '));
  });

  test('past closeTimeoutMs, close() resolves and a warn names the abandoned work', async () => {
    const events: string[] = [];
    const issuer = new DeafIssuer(events);
    const clock = new FakeClock(Date.now());
    const { logger, text } = captureLogger('debug');
    const keeper = new CertKeeper({ storage: new MemoryStorage(), issuers: [issuer], logger, clock, challenges, closeTimeoutMs: 5_000 });
    try {
      keeper.manageAsync(['abandoned.example.test']);
      await issuer.started.promise;
      const closed = keeper.close().then(() => events.push('close resolved'));
      await settle();
      await clock.advance(4_999);
      await settle();
      assert.deepEqual(events, [], 'still waiting before the timeout');
      await clock.advance(1);
      await closed;
      assert.deepEqual(events, ['close resolved']);
      const warn = text()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { level: number; msg: string; abandoned?: string[]; closeTimeoutMs?: number })
        .find((l) => l.level === 40 && Array.isArray(l.abandoned));
      assert.ok(warn, text());
      assert.deepEqual(warn.abandoned, ['abandoned.example.test']);
      assert.equal(warn.closeTimeoutMs, 5_000);
    } finally {
      issuer.finish.open();
    }
  });

  test('closeTimeoutMs is validated', () => {
    for (const bad of [-1, Number.POSITIVE_INFINITY, Number.NaN, '10' as unknown as number]) {
      assert.throws(() => new CertKeeper({ storage: new MemoryStorage(), closeTimeoutMs: bad }), { code: 'ERR_INVALID_OPTION', message: /closeTimeoutMs/ });
    }
  });

  test('closeTimeoutMs: 0 does not wait, and still reports what it abandoned', async () => {
    const events: string[] = [];
    const issuer = new DeafIssuer(events);
    const { logger, text } = captureLogger('debug');
    const keeper = new CertKeeper({ storage: new MemoryStorage(), issuers: [issuer], logger, challenges, closeTimeoutMs: 0 });
    try {
      keeper.manageAsync(['zero.example.test']);
      await issuer.started.promise;
      await keeper.close();
      assert.deepEqual(events, [], 'closed while the issuer still runs');
      assert.match(text(), /"abandoned":\["zero.example.test"\]/);
    } finally {
      issuer.finish.open();
    }
  });
});
