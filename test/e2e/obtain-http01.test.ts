import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { AcmeIssuer } from '../../src/issuers/acme.js';
import { parseIdentifier } from '../../src/names.js';
import { Http01Solver } from '../../src/challenges/http01.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { StorageNotFoundError } from '../../src/errors.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { captureLogger } from '../helpers/logging.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { assertValidChain } from '../challenges/e2e-verify.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

describe('obtain a certificate through HTTP-01 (real Pebble validation)', { skip }, () => {
  let pebble: PebbleHandle;
  let issuer: AcmeIssuer | undefined;
  let solver: Http01Solver | undefined;

  before(async () => {
    pebble = await startPebble();
  });
  after(async () => {
    await solver?.close();
    await issuer?.close();
    await pebble?.stop();
  });

  test('an IP address identifier is answered by its Host (RFC 8738)', async () => {
    const storage = new MemoryStorage();
    const ipSolver = new Http01Solver({ storage, port: pebble.httpPort, host: '127.0.0.1' });
    const ipIssuer = new AcmeIssuer({
      directoryUrl: pebble.directoryUrl,
      caCertificates: pebble.pebbleCaPem,
      agreeToTerms: true,
      storage,
      solvers: { 'http-01': ipSolver },
      pollIntervalMs: 50,
    });
    try {
      const identifiers = [parseIdentifier('127.0.0.1')];
      const { keyPem, csr } = await createKeyAndCsr(identifiers);
      const { chainPem } = await ipIssuer.issue({ identifiers, csr });
      assertValidChain(chainPem, await pebble.rootPem(), keyPem, ['127.0.0.1']);
    } finally {
      await ipSolver.close();
      await ipIssuer.close();
    }
  });

  test('one certificate for two names, answered by the standalone listener; chain verifies to the Pebble root', async () => {
    const storage = new MemoryStorage();
    const log = captureLogger('debug');
    solver = new Http01Solver({ storage, port: pebble.httpPort, host: '127.0.0.1', logger: log.logger });
    issuer = new AcmeIssuer({
      directoryUrl: pebble.directoryUrl,
      caCertificates: pebble.pebbleCaPem,
      agreeToTerms: true,
      storage,
      solvers: { 'http-01': solver },
      pollIntervalMs: 50,
    });
    const names = ['www.example.test', 'api.example.test'];
    const identifiers = names.map((n) => parseIdentifier(n));
    const { keyPem, csr } = await createKeyAndCsr(identifiers);
    const issuedBefore = pebble.issuedCount();

    const { chainPem } = await issuer.issue({ identifiers, csr });

    assertValidChain(chainPem, await pebble.rootPem(), keyPem, names);
    assert.equal(pebble.issuedCount(), issuedBefore + 1);
    // Pebble's validator really fetched both tokens from the listener.
    const answered = log.text().split('\n').filter((line) => line.includes('answered HTTP-01 challenge'));
    for (const name of names) assert.ok(answered.some((line) => line.includes(`"identifier":"${name}"`)), `answered for ${name}`);
    assert.equal(solver.listenerAddress(), undefined, 'the listener is closed once no challenge is pending');
    assert.equal(solver.memory.size, 0);
    await assert.rejects(storage.list(`acme/${issuer.key}/challenge_tokens`, true), StorageNotFoundError, 'no token left in storage');
  });
});
