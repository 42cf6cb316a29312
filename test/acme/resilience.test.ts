import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { AcmeUnreachableError } from '../../src/errors.js';
import type { AcmeIssuer } from '../../src/issuers/acme.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/types.js';
import { accountKeys } from '../../src/storage/layout.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { captureLogger, ids, pebbleIssuer } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

async function snapshot(storage: Storage): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let keys: string[] = [];
  try {
    keys = await storage.list('', true);
  } catch {
    return out;
  }
  for (const key of keys) {
    const info = await storage.stat(key);
    if (info.isTerminal) out.set(key, (await storage.load(key)).toString('base64'));
  }
  return out;
}

describe('ACME resilience against Pebble', { skip }, () => {
  const pebbles: PebbleHandle[] = [];
  const issuers: AcmeIssuer[] = [];
  after(async () => {
    await Promise.all(issuers.map((i) => i.close()));
    await Promise.all(pebbles.map((p) => p.stop()));
  });

  it('PEBBLE_WFE_NONCEREJECT=50: five issuances in a row all succeed', { timeout: 120_000 }, async () => {
    const pebble = await startPebble({ alwaysValid: true, nonceRejectPercent: 50 });
    pebbles.push(pebble);
    const { logger, text } = captureLogger();
    const issuer = pebbleIssuer(pebble, { logger });
    issuers.push(issuer);
    for (let i = 0; i < 5; i++) {
      const identifiers = ids(`nonce${i}.example.test`);
      await issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
    }
    assert.equal(pebble.issuedCount(), 5);
    assert.ok(text().includes('badNonce: sending again with the nonce of the answer'), 'Pebble did reject nonces along the way');
    await pebble.stop();
  });

  it('Pebble stopped: issue fails with AcmeUnreachableError in bounded time and leaves storage unchanged', { timeout: 60_000 }, async () => {
    const pebble = await startPebble({ alwaysValid: true, startChalltestsrv: false });
    pebbles.push(pebble);
    const storage = new MemoryStorage();
    const issuer = pebbleIssuer(pebble, { storage, retry: { baseDelayMs: 50 } });
    issuers.push(issuer);
    const identifiers = ids('down.example.test');
    await issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
    const before = await snapshot(storage);
    assert.ok(before.size >= 2, 'account key and metadata stored');
    await pebble.stop();

    await assert.rejects(issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr }), (e: unknown) => {
      assert.ok(e instanceof AcmeUnreachableError, String(e));
      assert.equal(e.code, 'ERR_ACME_UNREACHABLE');
      return true;
    });
    assert.deepEqual(await snapshot(storage), before);

    // A fresh issuer on fresh storage: fails the same way with default retry settings, writes nothing.
    const fresh = new MemoryStorage();
    const cold = pebbleIssuer(pebble, { storage: fresh });
    issuers.push(cold);
    await assert.rejects(cold.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr }), AcmeUnreachableError);
    assert.equal((await snapshot(fresh)).size, 0);
  });

  it('re-registers the stored key when the CA no longer knows the account (Pebble restarted)', { timeout: 60_000 }, async () => {
    const pebble = await startPebble({ alwaysValid: true, startChalltestsrv: false });
    pebbles.push(pebble);
    const storage = new MemoryStorage();
    const issuer = pebbleIssuer(pebble, { storage });
    issuers.push(issuer);
    const identifiers = ids('restart.example.test');
    const first = await issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
    const keyBefore = (await snapshot(storage)).get(accountKeys(issuer.key, 'admin@example.test').key);
    await pebble.restart();
    const second = await issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
    assert.ok(second.chainPem.includes('BEGIN CERTIFICATE'));
    const after = await snapshot(storage);
    assert.equal(after.get(accountKeys(issuer.key, 'admin@example.test').key), keyBefore, 'the account key is kept');
    const meta = JSON.parse((await storage.load(accountKeys(issuer.key, 'admin@example.test').meta)).toString()) as { url: string };
    assert.equal(meta.url, second.issuerData?.accountUrl);
    assert.ok(first.issuerData?.accountUrl);
    assert.equal(pebble.output().match(/POST \/sign-me-up/g)?.length, 2, 'registered once per Pebble life');
  });
});
