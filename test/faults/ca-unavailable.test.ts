/**
 * Fault: a CA answering 503 with Retry-After on the directory and on newNonce,
 * through the fault-injecting proxy in front of a real Pebble. While the wait
 * runs no request goes to that CA whatever the name, the error is typed and
 * carries the retry time, the keeper's backoff uses it, and once the wait is
 * over issuance goes through Pebble.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { CertKeeperError, ManageError } from '../../src/errors.js';
import type { AcmeIssuer } from '../../src/issuers/acme.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { ids, pebbleIssuer, RecordingSolver } from '../acme/helpers.js';
import { startProxy, type ProxyHandle, type SeenRequest } from '../acme/proxy.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { pebbleOptions } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const isDirectory = (r: SeenRequest): boolean => r.method === 'GET' && r.path === '/dir';
const isNewNonce = (r: SeenRequest): boolean => (r.method === 'GET' || r.method === 'HEAD') && r.path.startsWith('/nonce-plz');
const unavailable = (retryAfter: string) => ({ status: 503, noNonce: true, headers: { 'retry-after': retryAfter }, body: { type: 'about:blank', detail: 'down for maintenance' } });

/** The error's code and retry time; fails when it is not a typed error with one. */
function retryTimeOf(error: unknown): { code: string; retryAt: number } {
  assert.ok(error instanceof CertKeeperError, `a typed error, got ${String(error)}`);
  const retryAt = (error as { retryAt?: unknown }).retryAt;
  assert.equal(typeof retryAt, 'number', `${error.code} carries retryAt: ${error.message}`);
  return { code: error.code, retryAt: retryAt as number };
}

/** Drives a FakeClock forward while real I/O runs, so protocol waits (polling) pass. */
function pump(clock: FakeClock): () => void {
  const timer = setInterval(() => void clock.advance(100), 5);
  return () => clearInterval(timer);
}

describe('fault: 503 with Retry-After on the directory and newNonce', { skip }, () => {
  let pebble: PebbleHandle;
  const proxies: ProxyHandle[] = [];
  const issuers: AcmeIssuer[] = [];
  /** A proxy of its own per test: the CA state is per directory URL. */
  const newProxy = async (): Promise<ProxyHandle> => {
    const proxy = await startProxy(pebble);
    proxies.push(proxy);
    return proxy;
  };
  const issuerFor = (proxy: ProxyHandle, overrides: Parameters<typeof pebbleIssuer>[1] = {}): AcmeIssuer => {
    const issuer = pebbleIssuer(pebble, { directoryUrl: proxy.directoryUrl, caCertificates: proxy.caPem, ...overrides });
    issuers.push(issuer);
    return issuer;
  };
  const issue = async (issuer: AcmeIssuer, name: string) => {
    const identifiers = ids(name);
    return issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
  };

  before(async () => {
    pebble = await startPebble({ alwaysValid: true });
  });
  afterEach(async () => {
    await Promise.all(issuers.splice(0).map((i) => i.close()));
    await Promise.all(proxies.splice(0).map((p) => p.close()));
  });
  after(async () => {
    await pebble?.stop();
  });

  test('directory 503 Retry-After 120: three names make one directory request, fail typed with the retry time, and issue after it', { timeout: 90_000 }, async () => {
    const proxy = await newProxy();
    const clock = new FakeClock(Date.now());
    const start = clock.now();
    proxy.inject = (r) => (isDirectory(r) ? unavailable('120') : undefined);
    const issuer = issuerFor(proxy, { clock });

    const results = await Promise.allSettled(['a.down.test', 'b.down.test', 'c.down.test'].map((n) => issue(issuer, n)));
    for (const result of results) {
      assert.equal(result.status, 'rejected');
      const { code, retryAt } = retryTimeOf(result.reason);
      assert.equal(code, 'ERR_ACME_UNAVAILABLE');
      assert.equal(retryAt, start + 120_000, 'the retry time is the Retry-After');
    }
    // A later name inside the wait (90 s left, more than the 60 s a request may wait): no request at all.
    await clock.advance(30_000);
    const later = await issue(issuer, 'd.down.test').then(() => assert.fail('should wait'), (e: unknown) => e);
    assert.equal(retryTimeOf(later).retryAt, start + 120_000);
    assert.equal(proxy.seen.length, 1, `one request in the wait, saw ${proxy.seen.map((r) => `${r.method} ${r.path}`).join(', ')}`);

    proxy.inject = () => undefined;
    await clock.advance(90_000);
    const stop = pump(clock);
    try {
      const issued = await issue(issuer, 'd.down.test');
      assert.match(issued.chainPem, /BEGIN CERTIFICATE/);
    } finally {
      stop();
    }
    assert.equal(proxy.count(isDirectory), 2, 'the directory is read once more after the wait, then shared');
  });

  test('newNonce 503 Retry-After 120 (account already registered): typed error with the retry time, no request once known, then issuance', { timeout: 90_000 }, async () => {
    const proxy = await newProxy();
    const storage = new MemoryStorage();
    await issue(issuerFor(proxy, { storage }), 'first.nonce.test');

    const clock = new FakeClock(Date.now());
    const start = clock.now();
    proxy.seen.length = 0;
    proxy.inject = (r) => (isNewNonce(r) ? unavailable('120') : undefined);
    // A new issuer on the same storage: the stored account, a fresh connection without pooled nonces.
    const issuer = issuerFor(proxy, { storage, clock });
    const results = await Promise.allSettled(['a.nonce.test', 'b.nonce.test', 'c.nonce.test'].map((n) => issue(issuer, n)));
    for (const result of results) {
      assert.equal(result.status, 'rejected');
      const { code, retryAt } = retryTimeOf(result.reason);
      assert.equal(code, 'ERR_ACME_UNAVAILABLE');
      assert.equal(retryAt, start + 120_000);
    }
    // Three names asking at once each need a nonce: at most one newNonce each went out before the first 503 came back.
    const sent = proxy.seen.length;
    assert.ok(proxy.count(isNewNonce) >= 1 && proxy.count(isNewNonce) <= 3, `${proxy.count(isNewNonce)} newNonce requests`);
    assert.equal(proxy.seen.filter((r) => r.method === 'POST').length, 0, 'nothing signed is sent in the wait');
    // Known now: more names and retries inside the wait send nothing.
    await clock.advance(30_000);
    const again = await Promise.allSettled(['d.nonce.test', 'a.nonce.test'].map((n) => issue(issuer, n)));
    for (const result of again) assert.equal(result.status === 'rejected' && retryTimeOf(result.reason).retryAt, start + 120_000);
    assert.equal(proxy.seen.length, sent, 'no request once the Retry-After is known');

    proxy.inject = () => undefined;
    await clock.advance(90_001);
    const stop = pump(clock);
    try {
      assert.match((await issue(issuer, 'a.nonce.test')).chainPem, /BEGIN CERTIFICATE/);
    } finally {
      stop();
    }
  });

  test('a short Retry-After on the directory: names wait for it together, then all are issued', { timeout: 90_000 }, async () => {
    const proxy = await newProxy();
    let refusedAt = 0;
    proxy.inject = (r) => {
      if (!isDirectory(r) || refusedAt !== 0) return undefined;
      refusedAt = Date.now();
      return unavailable('2');
    };
    const issuer = issuerFor(proxy);
    const names = ['a.wait.test', 'b.wait.test', 'c.wait.test'];
    const issued = await Promise.all(names.map((n) => issue(issuer, n)));
    assert.equal(issued.length, 3);
    const directoryTimes = proxy.seen.filter(isDirectory).map((r) => r.at);
    assert.equal(directoryTimes.length, 2, 'the refused read and one read after the wait');
    const firstAfter = proxy.seen.find((r) => r.at > refusedAt && !isDirectory(r));
    assert.ok((directoryTimes[1] as number) - refusedAt >= 1_900, 'no directory read inside the wait');
    assert.ok(firstAfter === undefined || firstAfter.at - refusedAt >= 1_900, 'no request at all inside the wait');
  });

  test('through the keeper: every name fails typed, cert_failed and status() carry the retry time, one directory request', { timeout: 90_000 }, async () => {
    const proxy = await newProxy();
    proxy.inject = (r) => (isDirectory(r) ? unavailable('120') : undefined);
    const started = Date.now();
    const keeper = new CertKeeper(pebbleOptions(pebble, new MemoryStorage(), { ca: proxy.directoryUrl, caCertificates: proxy.caPem }));
    const failed: { names: string[]; nextAttemptAt: Date | undefined; code: string | undefined }[] = [];
    keeper.on('cert_failed', (e) => failed.push({ names: e.names, nextAttemptAt: e.nextAttemptAt, code: (e.error as CertKeeperError).code }));
    try {
      const names = ['a.keeper.test', 'b.keeper.test', 'c.keeper.test'];
      const error = await keeper.manageSync(names).then(() => assert.fail('should fail'), (e: unknown) => e);
      assert.ok(error instanceof ManageError);
      assert.equal(error.failures.length, 3);
      for (const failure of error.failures) {
        const { code, retryAt } = retryTimeOf(failure.error);
        assert.equal(code, 'ERR_ACME_UNAVAILABLE');
        assert.ok(retryAt >= started + 120_000);
      }
      assert.equal(failed.length, 3);
      for (const event of failed) {
        assert.equal(event.code, 'ERR_ACME_UNAVAILABLE');
        assert.ok(event.nextAttemptAt && event.nextAttemptAt.getTime() >= started + 120_000, 'the backoff waits for Retry-After');
      }
      for (const name of names) assert.equal(keeper.status(name).lastError?.code, 'ERR_ACME_UNAVAILABLE');
      assert.equal(proxy.count(isDirectory), 1, 'one directory request for three names');
      assert.equal(proxy.seen.length, 1);
    } finally {
      await keeper.close();
    }
  });

  test('a 503 with Retry-After on any endpoint holds the next request to the CA until it runs out, then issuance goes on', { timeout: 120_000 }, async () => {
    const proxy = await newProxy();
    const endpoints: [string, (r: SeenRequest) => boolean][] = [
      ['newAccount', (r) => r.method === 'POST' && r.path.startsWith('/sign-me-up')],
      ['newOrder', (r) => r.method === 'POST' && r.path.startsWith('/order-plz')],
      ['authorization', (r) => r.method === 'POST' && r.path.startsWith('/authZ/')],
      ['challenge', (r) => r.method === 'POST' && r.path.startsWith('/chalZ/')],
      ['finalize', (r) => r.method === 'POST' && r.path.startsWith('/finalize-order/')],
      ['order poll', (r) => r.method === 'POST' && r.path.startsWith('/my-order/')],
      ['certificate', (r) => r.method === 'POST' && r.path.startsWith('/certZ/')],
    ];
    for (const [what, matches] of endpoints) {
      let refusedAt = 0;
      proxy.seen.length = 0;
      proxy.inject = (r) => {
        if (refusedAt !== 0 || !matches(r)) return undefined;
        refusedAt = r.at;
        return unavailable('1');
      };
      // A new account each time, so newAccount is sent too.
      const issued = await issue(issuerFor(proxy, { storage: new MemoryStorage() }), `${what.replace(' ', '-')}.any.test`);
      assert.match(issued.chainPem, /BEGIN CERTIFICATE/, what);
      assert.ok(refusedAt > 0, `${what} was refused once`);
      const next = proxy.seen.find((r) => r.at >= refusedAt && proxy.seen.indexOf(r) > proxy.seen.findIndex((x) => x.at === refusedAt && matches(x)));
      assert.ok(next, `${what}: the CA was asked again`);
      assert.ok(next.at - refusedAt >= 990, `${what}: next request ${next.at - refusedAt} ms after the 503 with Retry-After: 1`);
    }
  });

  test('no untyped error leaves the ACME layer: a malformed order from the CA is ERR_ACME_ORDER', { timeout: 60_000 }, async () => {
    const proxy = await newProxy();
    proxy.inject = (r) =>
      r.method === 'POST' && r.path.startsWith('/order-plz')
        ? { status: 201, headers: { location: `${new URL(proxy.directoryUrl).origin}/my-order/x` }, body: { status: 'pending', authorizations: 'not a list', finalize: 7 } }
        : undefined;
    const error = await issue(issuerFor(proxy), 'malformed.example.test').then(() => assert.fail('should fail'), (e: unknown) => e);
    assert.ok(error instanceof CertKeeperError, `typed, got ${String(error)}`);
    assert.equal(error.code, 'ERR_ACME_ORDER');
  });

  test('an absurd Retry-After is capped at one day', { timeout: 60_000 }, async () => {
    const proxy = await newProxy();
    const clock = new FakeClock(Date.now());
    proxy.inject = (r) => (isDirectory(r) ? unavailable(String(10 * 365 * 86_400)) : undefined);
    const error = await issue(issuerFor(proxy, { clock, solvers: { 'http-01': new RecordingSolver() } }), 'x.capped.test').then(
      () => assert.fail('should fail'),
      (e: unknown) => e,
    );
    assert.equal(retryTimeOf(error).retryAt, clock.now() + 86_400_000);
  });
});
