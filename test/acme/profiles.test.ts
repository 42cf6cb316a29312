/** Which ACME profile an order asks for: the choice from the directory, and moving on after invalidProfile. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AcmeDirectory } from '../../src/acme/directories.js';
import { InvalidProfileError, ProfileUnavailableError, offeredProfiles, profileCandidates, withProfiles } from '../../src/acme/profiles.js';
import { AcmeProblemError, InvalidOptionError } from '../../src/errors.js';
import { profilePreference } from '../../src/validate.js';

const URL = 'https://ca.test/directory';
const directory = (profiles?: Record<string, string>): AcmeDirectory => ({
  newNonce: 'https://ca.test/nonce',
  newAccount: 'https://ca.test/account',
  newOrder: 'https://ca.test/order',
  ...(profiles ? { meta: { profiles } } : {}),
});
const LE = directory({ classic: '90 days', tlsserver: '45 days', shortlived: '160 hours' });
const problem = (type: string): AcmeProblemError => new AcmeProblemError({ type: `urn:ietf:params:acme:error:${type}`, status: 400, detail: `${type} detail` });

describe('profileCandidates', () => {
  test('no preference and nothing kept: one order without a profile', () => {
    assert.deepEqual(profileCandidates({}, LE, URL), [undefined]);
  });

  test('a preference keeps its order and drops what the directory does not offer', () => {
    assert.deepEqual(profileCandidates({ preference: ['nonesuch', 'tlsserver', 'classic'] }, LE, URL), ['tlsserver', 'classic']);
    assert.deepEqual(profileCandidates({ preference: ['classic', 'tlsserver'] }, LE, URL), ['classic', 'tlsserver']);
  });

  test('none of the preference offered: ProfileUnavailableError naming both lists', () => {
    assert.throws(
      () => profileCandidates({ preference: ['nonesuch', 'other'] }, LE, URL),
      (e: unknown) =>
        e instanceof ProfileUnavailableError &&
        e.code === 'ERR_PROFILE_UNAVAILABLE' &&
        e.requested.join() === 'nonesuch,other' &&
        e.offered.join() === 'classic,tlsserver,shortlived' &&
        /offers \[classic, tlsserver, shortlived\]/.test(e.message),
    );
  });

  test('a CA that lists no profiles (or an empty map) gets orders without one, and it is logged at debug', () => {
    const lines: string[] = [];
    const log = { debug: (_o: unknown, msg: string) => lines.push(msg) } as never;
    assert.deepEqual(profileCandidates({ preference: ['tlsserver'] }, directory(), URL, log), [undefined]);
    assert.deepEqual(profileCandidates({ preference: ['tlsserver'] }, directory({}), URL), [undefined]);
    assert.deepEqual(lines, ['the CA lists no profiles; ordering without one']);
  });

  test('the preference wins over the kept profile', () => {
    assert.deepEqual(profileCandidates({ preference: ['tlsserver'], kept: 'shortlived' }, LE, URL), ['tlsserver']);
  });

  test('a kept profile is asked for first, the CA default after it; one no longer offered falls back to the default', () => {
    assert.deepEqual(profileCandidates({ kept: 'shortlived' }, LE, URL), ['shortlived', undefined]);
    assert.deepEqual(profileCandidates({ kept: 'retired' }, LE, URL), [undefined]);
  });

  test('offeredProfiles ignores a malformed meta.profiles', () => {
    assert.equal(offeredProfiles({ ...LE, meta: { profiles: ['classic'] as never } }), undefined);
    assert.deepEqual(offeredProfiles(LE), ['classic', 'tlsserver', 'shortlived']);
  });
});

describe('withProfiles', () => {
  test('invalidProfile moves to the next candidate; the first accepted one wins', async () => {
    const tried: (string | undefined)[] = [];
    const result = await withProfiles(['tlsserver', 'classic'], async (p) => {
      tried.push(p);
      if (p === 'tlsserver') throw problem('invalidProfile');
      return `ordered ${p}`;
    });
    assert.equal(result, 'ordered classic');
    assert.deepEqual(tried, ['tlsserver', 'classic']);
  });

  test('every candidate refused: InvalidProfileError naming them, the last problem as cause', async () => {
    await assert.rejects(
      withProfiles(['tlsserver', 'classic'], async () => {
        throw problem('invalidProfile');
      }),
      (e: unknown) => e instanceof InvalidProfileError && e.code === 'ERR_INVALID_PROFILE' && e.profiles.join() === 'tlsserver,classic' && e.cause instanceof AcmeProblemError,
    );
  });

  test('another problem stops at once, unchanged', async () => {
    let calls = 0;
    const rateLimited = problem('rateLimited');
    await assert.rejects(
      withProfiles(['tlsserver', 'classic'], async () => {
        calls++;
        throw rateLimited;
      }),
      (e: unknown) => e === rateLimited,
    );
    assert.equal(calls, 1);
  });

  test('a kept profile refused falls back to an order without one', async () => {
    const tried: (string | undefined)[] = [];
    await withProfiles(['shortlived', undefined], async (p) => {
      tried.push(p);
      if (p !== undefined) throw problem('invalidProfile');
      return 'ok';
    });
    assert.deepEqual(tried, ['shortlived', undefined]);
  });
});

describe('profilePreference (the option)', () => {
  test('one name or an ordered list, frozen, repeats dropped', () => {
    assert.deepEqual(profilePreference('shortlived', 'profile'), ['shortlived']);
    const list = profilePreference(['tlsserver', 'classic', 'tlsserver'], 'profile');
    assert.deepEqual(list, ['tlsserver', 'classic']);
    assert.ok(Object.isFrozen(list));
    assert.equal(profilePreference(undefined, 'profile'), undefined);
  });

  test('refuses an empty list, empty or spaced names and non-strings, naming the option', () => {
    for (const bad of [[], '', 'two words', [1], ['ok', ''], {}]) {
      assert.throws(() => profilePreference(bad, 'settings.profile'), (e: unknown) => e instanceof InvalidOptionError && e.option === 'settings.profile');
    }
  });
});
