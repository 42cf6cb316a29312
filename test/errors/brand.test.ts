import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import * as one from '../../src/errors.js';
import { recordFailure } from '../../src/renewal/backoff.js';

// A second copy of the error modules in another folder, as when an adapter resolves its own copy of
// certkeeper: every file is loaded again under a different URL, so its classes are distinct objects.
const source = join(import.meta.dirname, '..', '..', 'src');
const copyDir = mkdtempSync(join(tmpdir(), 'certkeeper-second-copy-'));
for (const file of readdirSync(source).filter((f) => /^(errors|error-base|error-codes|kinds)\.ts$/.test(f))) copyFileSync(join(source, file), join(copyDir, file));
const two = (await import(pathToFileURL(join(copyDir, 'errors.ts')).href)) as typeof one;
after(() => rmSync(copyDir, { recursive: true, force: true }));

describe('errors across two installed copies', () => {
  it('are distinct classes (the premise of the test)', () => {
    assert.notEqual(one.CertKeeperError, two.CertKeeperError);
    assert.notEqual(one.LockLostError, two.LockLostError);
  });

  it('are recognised by isCertKeeperError both ways', () => {
    assert.equal(one.isCertKeeperError(new two.StorageError('x')), true);
    assert.equal(two.isCertKeeperError(new one.StorageError('x')), true);
    assert.equal(one.isCertKeeperError(new Error('x')), false);
    assert.equal(one.isCertKeeperError({ code: 'ERR_STORAGE', message: 'look-alike' }), false);
    assert.equal(one.isCertKeeperError(null), false);
  });

  it('pass instanceof CertKeeperError both ways', () => {
    assert.ok(new two.LockLostError('l') instanceof one.CertKeeperError);
    assert.ok(new one.LockLostError('l') instanceof two.CertKeeperError);
    assert.ok(!(new Error('x') instanceof one.CertKeeperError));
  });

  it('pass instanceof a subclass only for that subclass (or its descendants)', () => {
    assert.ok(new two.LockLostError('l') instanceof one.LockLostError);
    assert.ok(new one.InvalidOptionError('o', 'bad') instanceof two.InvalidOptionError);
    assert.ok(!(new two.LockLostError('l') instanceof one.LockTimeoutError));
    assert.ok(!(new two.StorageError('s') instanceof one.StorageNotFoundError));
    // Same copy still works as usual.
    assert.ok(new one.StorageNotFoundError('k') instanceof one.StorageNotFoundError);
    assert.ok(!(new one.StorageError('s') instanceof one.StorageNotFoundError));
  });
});

describe('codes persisted in renewal state', () => {
  it('are certkeeper codes only (a system or library code is not kept)', () => {
    const system = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    assert.equal(recordFailure(undefined, system, 0).lastError?.code, undefined);
    const axios = Object.assign(new Error('Network Error'), { code: 'ERR_NETWORK' });
    assert.equal(recordFailure(undefined, axios, 0).lastError?.code, undefined);
    assert.equal(recordFailure(undefined, new two.LockLostError('l'), 0).lastError?.code, 'ERR_LOCK_LOST');
  });

  it('never include a code outside the README table, even one shaped like ours', () => {
    const lookalike = Object.assign(new Error('made up'), { code: 'ERR_NOT_IN_THE_TABLE' });
    assert.equal(recordFailure(undefined, lookalike, 0).lastError?.code, undefined);
    assert.ok(!('ERR_UNKNOWN' in one.ERROR_CODES));
  });
});
