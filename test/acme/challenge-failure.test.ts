import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { AcmeProblemError, ChallengeFailedError } from '../../src/errors.js';
import type { AcmeIssuer } from '../../src/issuers/acme.js';
import type { ChallengeContext, Solver } from '../../src/challenges/types.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { captureLogger, ids, pebbleIssuer, untilAborted } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

describe('failed challenges (real validation, nobody answering)', { skip }, () => {
  let pebble: PebbleHandle;
  const issuers: AcmeIssuer[] = [];
  before(async () => {
    pebble = await startPebble();
  });
  after(async () => {
    await Promise.all(issuers.map((i) => i.close()));
    await pebble?.stop();
  });

  it('reports ChallengeFailedError with the CA problem, deactivates the sibling authorization and cleans up both', async () => {
    const { logger, text } = captureLogger();
    const cleaned: string[] = [];
    // fail.example.test: presented but unanswerable, so the CA marks it invalid.
    // wait.example.test: its solver waits until the order gives up on it (abort), so its authorization stays pending.
    // fail.example.test is only presented once wait.example.test has been, so both are in flight.
    let waitPresented!: () => void;
    const waitIsPresented = new Promise<void>((resolve) => { waitPresented = resolve; });
    const solver: Solver = {
      async present(challenge: ChallengeContext) {
        if (challenge.identifier.value === 'wait.example.test') waitPresented();
        else await waitIsPresented;
      },
      async wait(challenge: ChallengeContext) {
        if (challenge.identifier.value !== 'wait.example.test') return;
        await untilAborted(challenge.signal);
      },
      async cleanUp(challenge) {
        cleaned.push(challenge.identifier.value);
      },
    };
    const issuer = pebbleIssuer(pebble, { solvers: { 'http-01': solver }, logger });
    issuers.push(issuer);
    const identifiers = ids('fail.example.test', 'wait.example.test');
    await assert.rejects(issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr }), (e: unknown) => {
      assert.ok(e instanceof ChallengeFailedError, String(e));
      assert.equal(e.identifier, 'fail.example.test');
      assert.equal(e.challengeType, 'http-01');
      assert.ok(e.cause instanceof AcmeProblemError);
      assert.match(e.cause.type, /^urn:ietf:params:acme:error:/);
      return true;
    });
    assert.deepEqual(cleaned.sort(), ['fail.example.test', 'wait.example.test']);
    const deactivated = text().split('\n').filter((l) => l.includes('authorization deactivated'));
    assert.equal(deactivated.length, 1, 'the pending sibling authorization was deactivated');
    assert.equal(pebble.issuedCount(), 0);
  });
});
