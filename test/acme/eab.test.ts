import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { AcmeProblemError, EabRequiredError } from '../../src/errors.js';
import type { AcmeIssuer } from '../../src/issuers/acme.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { captureLogger, ids, pebbleIssuer } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

describe('External account binding (Pebble with externalAccountBindingRequired)', { skip }, () => {
  const hmacKey = randomBytes(32).toString('base64url');
  let pebble: PebbleHandle;
  const issuers: AcmeIssuer[] = [];
  before(async () => {
    pebble = await startPebble({ alwaysValid: true, eab: { 'kid-1': hmacKey } });
  });
  after(async () => {
    await Promise.all(issuers.map((i) => i.close()));
    await pebble?.stop();
  });

  it('registers with kid and HMAC key and issues; the HMAC key never reaches the debug log', async () => {
    const { logger, text } = captureLogger();
    const issuer = pebbleIssuer(pebble, { externalAccountBinding: { kid: 'kid-1', hmacKey }, logger });
    issuers.push(issuer);
    const identifiers = ids('eab.example.test');
    const result = await issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
    assert.ok(result.chainPem.includes('BEGIN CERTIFICATE'));
    assert.ok(text().length > 0);
    assert.ok(!text().includes(hmacKey));
    assert.ok(!text().includes(Buffer.from(hmacKey, 'base64url').toString('base64')));
  });

  it('without a binding: EabRequiredError before any registration attempt', async () => {
    const storage = new MemoryStorage();
    const issuer = pebbleIssuer(pebble, { storage });
    issuers.push(issuer);
    const identifiers = ids('noeab.example.test');
    const before = pebble.output().match(/POST \/sign-me-up/g)?.length ?? 0;
    await assert.rejects(issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr }), (e: unknown) => {
      assert.ok(e instanceof EabRequiredError);
      assert.equal(e.code, 'ERR_EAB_REQUIRED');
      return true;
    });
    assert.equal(pebble.output().match(/POST \/sign-me-up/g)?.length ?? 0, before);
    assert.equal(await storage.exists('acme'), false);
  });

  it('a wrong HMAC key is refused by the CA as a typed problem, without the key in the message', async () => {
    const wrong = randomBytes(32).toString('base64url');
    const issuer = pebbleIssuer(pebble, { externalAccountBinding: { kid: 'kid-1', hmacKey: wrong } });
    issuers.push(issuer);
    const identifiers = ids('wrong.example.test');
    await assert.rejects(issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr }), (e: unknown) => {
      assert.ok(e instanceof AcmeProblemError);
      assert.ok(!e.message.includes(wrong));
      return true;
    });
  });
});
