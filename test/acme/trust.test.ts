import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { registeredOriginCount } from '../../src/acme/trust.js';
import { AcmeUnreachableError } from '../../src/errors.js';
import { AcmeIssuer } from '../../src/issuers/acme.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { RecordingSolver, ids, pebbleIssuer } from './helpers.js';

const skip = skipUnlessInstalled('pebble');

describe('per-directory trust in one process', { skip }, () => {
  let one: PebbleHandle;
  let two: PebbleHandle;
  before(async () => {
    [one, two] = await Promise.all([
      startPebble({ alwaysValid: true, startChalltestsrv: false }),
      startPebble({ alwaysValid: true, startChalltestsrv: false }),
    ]);
  });
  after(async () => {
    await Promise.all([one?.stop(), two?.stop()]);
  });

  it('two issuers trusting different private CAs issue side by side', async () => {
    assert.notEqual(one.pebbleCaPem, two.pebbleCaPem);
    const a = pebbleIssuer(one);
    const b = pebbleIssuer(two);
    const identifiers = ids('trust.example.test');
    const [ra, rb] = await Promise.all([
      a.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr }),
      b.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr }),
    ]);
    assert.ok(ra.chainPem && rb.chainPem);
    assert.equal(one.issuedCount(), 1);
    assert.equal(two.issuedCount(), 1);
    await Promise.all([a.close(), b.close()]);
    assert.equal(registeredOriginCount(), 0, 'close() released every agent');
  });

  it('an issuer that does not trust the CA fails with AcmeUnreachableError, without retries', { timeout: 20_000 }, async () => {
    const untrusting = new AcmeIssuer({
      directoryUrl: one.directoryUrl,
      caCertificates: two.pebbleCaPem, // the wrong CA
      agreeToTerms: true,
      storage: new MemoryStorage(),
      solvers: { 'http-01': new RecordingSolver() },
      retry: { baseDelayMs: 60_000 }, // a retry would exceed the test timeout
    });
    const identifiers = ids('untrusted.example.test');
    await assert.rejects(untrusting.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr }), (e: unknown) => {
      assert.ok(e instanceof AcmeUnreachableError);
      assert.match(e.message, /127\.0\.0\.1/);
      return true;
    });
    await untrusting.close();
  });
});
