/**
 * Fault tests against Pebble run the way the default harness does not:
 * validation that sleeps (no PEBBLE_VA_NOSLEEP), authorization reuse
 * (PEBBLE_AUTHZREUSE=100), orders that go invalid or never finish, and a
 * longer chain (PEBBLE_CHAIN_LENGTH=3) stored whole and verified to the root.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { AcmeProblemError, CertKeeperError } from '../../src/errors.js';
import type { AcmeIssuer } from '../../src/issuers/acme.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import type { ChallengeContext, Solver } from '../../src/challenges/types.js';
import { Http01Solver } from '../../src/challenges/http01.js';
import { loadCertificateSet } from '../../src/storage/certificates.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { ids, pebbleIssuer } from '../acme/helpers.js';
import { startProxy, type ProxyHandle, type SeenRequest } from '../acme/proxy.js';
import { startPebble, type PebbleHandle, type PebbleOptions } from '../helpers/pebble.js';
import { findBinary, skipUnlessInstalled } from '../helpers/system.js';
import { pebbleOptions } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const isAuthz = (r: SeenRequest): boolean => r.method === 'POST' && r.path.startsWith('/authZ/');
const isChallenge = (r: SeenRequest): boolean => r.method === 'POST' && r.path.startsWith('/chalZ/');
const isFinalize = (r: SeenRequest): boolean => r.method === 'POST' && r.path.startsWith('/finalize-order/');
const isOrderPoll = (r: SeenRequest): boolean => r.method === 'POST' && r.path.startsWith('/my-order/');

/** A real solver that counts its calls. */
class CountingSolver implements Solver {
  presented = 0;
  cleaned = 0;
  constructor(readonly inner: Solver) {}
  async present(challenge: ChallengeContext): Promise<void> {
    this.presented++;
    await this.inner.present(challenge);
  }
  async cleanUp(challenge: ChallengeContext): Promise<void> {
    this.cleaned++;
    await this.inner.cleanUp(challenge);
  }
}

/** One Pebble (and its proxy) per describe, with the given options. */
function withPebble(options: PebbleOptions): { pebble: () => PebbleHandle; proxy: () => ProxyHandle; issuers: AcmeIssuer[] } {
  let pebble: PebbleHandle | undefined;
  let proxy: ProxyHandle | undefined;
  const issuers: AcmeIssuer[] = [];
  before(async () => {
    pebble = await startPebble(options);
    proxy = await startProxy(pebble);
  });
  after(async () => {
    await Promise.all(issuers.map((i) => i.close()));
    await proxy?.close();
    await pebble?.stop();
  });
  return { pebble: () => pebble as PebbleHandle, proxy: () => proxy as ProxyHandle, issuers };
}

function proxiedIssuer(ctx: ReturnType<typeof withPebble>, solver: Solver, overrides: Parameters<typeof pebbleIssuer>[1] = {}): AcmeIssuer {
  const issuer = pebbleIssuer(ctx.pebble(), { directoryUrl: ctx.proxy().directoryUrl, caCertificates: ctx.proxy().caPem, solvers: { 'http-01': solver }, ...overrides });
  ctx.issuers.push(issuer);
  return issuer;
}

async function issue(issuer: AcmeIssuer, ...names: string[]) {
  const identifiers = ids(...names);
  return issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
}

describe('fault: Pebble validating after a random 0-15 s sleep (no PEBBLE_VA_NOSLEEP)', { skip }, () => {
  const ctx = withPebble({ env: { PEBBLE_VA_NOSLEEP: '0' } });

  test('two names are issued; the engine polls each authorization until valid, then finalizes, with bounded polls', { timeout: 120_000 }, async (t) => {
    const pebble = ctx.pebble();
    const solver = new CountingSolver(new Http01Solver({ port: pebble.httpPort, host: '127.0.0.1' }));
    const issuer = proxiedIssuer(ctx, solver);
    const { chainPem } = await issue(issuer, 'sleepy1.example.test', 'sleepy2.example.test');
    assert.match(chainPem, /BEGIN CERTIFICATE/);
    const seen = ctx.proxy().seen;
    assert.equal(seen.filter(isChallenge).length, 2, 'each challenge answered once');
    assert.equal(solver.presented, 2);
    assert.equal(solver.cleaned, 2);
    const finalizeAt = seen.findIndex(isFinalize);
    assert.ok(finalizeAt > 0);
    assert.equal(seen.slice(finalizeAt).filter(isAuthz).length, 0, 'no authorization polled after finalize: finalize waited for both to be valid');
    const polls = seen.filter(isAuthz).length;
    t.diagnostic(`${polls} authorization requests, ${seen.filter(isOrderPoll).length} order polls`);
    // 100 ms growing by 1.5x up to 5 s: a 15 s validation takes about 12 polls; 2 authorizations plus their first reads.
    assert.ok(polls <= 2 * 14, `${polls} authorization polls`);
  });
});

describe('fault: PEBBLE_AUTHZREUSE=100 (already-valid authorizations)', { skip }, () => {
  const ctx = withPebble({ authzReusePercent: 100 });

  test('orders for the same account reuse valid authorizations: no challenge and no solver call for a reused name', { timeout: 60_000 }, async () => {
    const pebble = ctx.pebble();
    const solver = new CountingSolver(new Http01Solver({ port: pebble.httpPort, host: '127.0.0.1' }));
    const presented: string[] = [];
    const inner = solver.present.bind(solver);
    solver.present = async (c) => {
      presented.push(c.identifier.value);
      await inner(c);
    };
    const issuer = proxiedIssuer(ctx, solver, { storage: new MemoryStorage() });
    await issue(issuer, 'reuse.example.test');
    assert.deepEqual(presented, ['reuse.example.test']);
    const proxy = ctx.proxy();

    // Same name again: every authorization is valid, the order is ready at once.
    proxy.seen.length = 0;
    assert.match((await issue(issuer, 'reuse.example.test')).chainPem, /BEGIN CERTIFICATE/);
    assert.deepEqual(presented, ['reuse.example.test'], 'the solver was not called for the reused authorization');
    assert.equal(proxy.count(isChallenge), 0, 'no challenge answered the second time');

    // The reused name with a new one: the order is pending, one authorization already valid (skipped), one solved.
    proxy.seen.length = 0;
    const both = await issue(issuer, 'reuse.example.test', 'fresh.example.test');
    assert.match(both.chainPem, /BEGIN CERTIFICATE/);
    assert.deepEqual(presented, ['reuse.example.test', 'fresh.example.test'], 'only the new name was presented');
    assert.equal(proxy.count(isChallenge), 1, 'one challenge, for the new name');
    assert.ok(proxy.count(isAuthz) >= 2, 'both authorizations were read');
    assert.equal(solver.cleaned, 2);
  });
});

describe('fault: orders that go invalid or never finish', { skip }, () => {
  const ctx = withPebble({});

  test('a failed validation (nothing answers HTTP-01) is ERR_CHALLENGE_FAILED with the CA problem, and cleans up', { timeout: 60_000 }, async () => {
    const solver = new CountingSolver({ present: async () => undefined, cleanUp: async () => undefined });
    const issuer = proxiedIssuer(ctx, solver);
    const error = await issue(issuer, 'nobody.example.test').then(() => assert.fail('should fail'), (e: unknown) => e);
    assert.ok(error instanceof CertKeeperError);
    assert.equal(error.code, 'ERR_CHALLENGE_FAILED');
    assert.ok(error.cause instanceof AcmeProblemError, 'the challenge error from Pebble is the cause');
    assert.equal(solver.cleaned, 1);
  });

  test('an order that turns invalid after finalize is ERR_ACME_ORDER with the CA problem', { timeout: 60_000 }, async () => {
    const pebble = ctx.pebble();
    const proxy = ctx.proxy();
    let finalized = false;
    proxy.inject = (r) => {
      if (isFinalize(r)) finalized = true;
      if (!finalized || !isOrderPoll(r)) return undefined;
      return { status: 200, body: { status: 'invalid', authorizations: [], finalize: '', identifiers: [], error: { type: 'urn:ietf:params:acme:error:serverInternal', detail: 'issuance failed' } } };
    };
    const solver = new CountingSolver(new Http01Solver({ port: pebble.httpPort, host: '127.0.0.1' }));
    const issuer = proxiedIssuer(ctx, solver);
    try {
      const error = await issue(issuer, 'invalid.example.test').then(() => assert.fail('should fail'), (e: unknown) => e);
      assert.ok(proxy.count(isOrderPoll) >= 1, 'Pebble answered finalize with "processing": the order was polled');
      assert.ok(error instanceof CertKeeperError, String(error));
      assert.equal(error.code, 'ERR_ACME_ORDER');
      assert.match(error.message, /became invalid: issuance failed/);
      assert.ok(error.cause instanceof AcmeProblemError);
    } finally {
      proxy.inject = () => undefined;
    }
  });

  test('an order that never finishes hits orderTimeoutMs: ERR_ACME_ORDER, challenges cleaned up, deactivation bounded', { timeout: 20_000 }, async () => {
    const pebble = ctx.pebble();
    const proxy = ctx.proxy();
    let challenged = false;
    // The CA takes the challenge answer, then never answers about the authorization again.
    proxy.inject = (r) => {
      if (isChallenge(r)) challenged = true;
      return challenged && isAuthz(r) ? { stall: true, status: 0, body: null } : undefined;
    };
    const solver = new CountingSolver(new Http01Solver({ port: pebble.httpPort, host: '127.0.0.1' }));
    const issuer = proxiedIssuer(ctx, solver, { orderTimeoutMs: 2_000 });
    try {
      const error = await issue(issuer, 'stuck.example.test').then(() => assert.fail('should time out'), (e: unknown) => e);
      assert.ok(error instanceof CertKeeperError, String(error));
      assert.equal(error.code, 'ERR_ACME_ORDER');
      assert.match(error.message, /did not complete within 2000 ms/);
      assert.equal(solver.presented, 1);
      assert.equal(solver.cleaned, 1, 'the challenge was cleaned up');
    } finally {
      proxy.inject = () => undefined;
    }
  });
});

describe('fault: PEBBLE_CHAIN_LENGTH=3, the full chain stored', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  before(async () => {
    pebble = await startPebble({ env: { PEBBLE_CHAIN_LENGTH: '3' } });
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-chain3-'));
  });
  after(async () => {
    await pebble?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the stored chain is the leaf and all its intermediates, and verifies to Pebble\'s root (node:crypto and openssl)', { timeout: 60_000 }, async () => {
    const storage = new MemoryStorage();
    const keeper = new CertKeeper(pebbleOptions(pebble, storage));
    let certPem: string;
    try {
      await keeper.manageSync(['chain3.example.test']);
      const set = await loadCertificateSet(storage, keeper.status('chain3.example.test').issuer!, 'chain3.example.test');
      certPem = set.certPem;
    } finally {
      await keeper.close();
    }
    const blocks = certPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    // Pebble 2.x with chain length 3 issues below three intermediates (leaf <- #0 <- #1 <- #2 <- root).
    assert.equal(blocks.length, 4, 'the leaf and every intermediate Pebble sent');
    const chain = blocks.map((b) => new X509Certificate(b));
    const root = new X509Certificate(await pebble.rootPem());
    for (let i = 0; i < chain.length; i++) {
      const issuer = chain[i + 1] ?? root;
      assert.ok(chain[i]!.checkIssued(issuer), `certificate ${i} is issued by the next`);
      assert.ok(chain[i]!.verify(issuer.publicKey), `certificate ${i} is signed by the next`);
    }
    assert.ok(!chain.some((c) => c.fingerprint256 === root.fingerprint256), 'the root itself is not in the chain');
    assert.ok(chain[0]!.subjectAltName?.includes('DNS:chain3.example.test'));

    const openssl = findBinary('openssl');
    if (openssl) {
      await writeFile(join(dir, 'root.pem'), root.toString());
      await writeFile(join(dir, 'leaf.pem'), blocks[0]!);
      await writeFile(join(dir, 'intermediates.pem'), blocks.slice(1).join('\n'));
      const out = execFileSync(openssl, ['verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'intermediates.pem'), join(dir, 'leaf.pem')], { encoding: 'utf8' });
      assert.match(out, /leaf\.pem: OK/);
    }
  });
});
