/**
 * IP-address names in storage: every spelling of an address normalises to one
 * name, its keys are filesystem-safe (no `:`), distinct addresses never share
 * a key, and FileStorage stores and lists them.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseIdentifier } from '../../src/names.js';
import { FileStorage } from '../../src/storage/file.js';
import { certificateKeys, certificateLockName, failureStateKey } from '../../src/storage/layout.js';

describe('IP-address names in storage', () => {
  it('normalises IPv4 and IPv6 spellings to one canonical name', () => {
    for (const spelling of ['::1', '[::1]', '0:0:0:0:0:0:0:1', '0000:0000:0000:0000:0000:0000:0000:0001']) {
      assert.deepEqual(parseIdentifier(spelling), { type: 'ip', value: '::1', wildcard: false }, spelling);
    }
    assert.equal(parseIdentifier('2001:DB8:0:0:0:0:0:7').value, '2001:db8::7');
    assert.equal(parseIdentifier('[2001:db8::7]').value, '2001:db8::7');
    assert.equal(parseIdentifier('127.0.0.1').value, '127.0.0.1');
    assert.equal(parseIdentifier('::ffff:127.0.0.1').value, '::ffff:7f00:1');
  });

  it('keys have no ":" and distinct addresses get distinct keys', () => {
    const names = ['::1', '::2', '2001:db8::7', '2001:db8:0:7::', '127.0.0.1', 'fe80::1', '::ffff:7f00:1'];
    const keys = names.map((n) => certificateKeys('ca.test-dir', n).cert);
    for (const key of [...keys, ...names.map(certificateLockName), ...names.map(failureStateKey)]) assert.doesNotMatch(key, /:/, key);
    assert.equal(new Set(keys).size, names.length);
    assert.equal(certificateKeys('ca.test-dir', '::1').cert, 'certificates/ca.test-dir/__1/__1.crt');
  });

  it('FileStorage stores, lists and locks an IPv6 certificate name', async () => {
    const root = await mkdtemp(join(tmpdir(), 'certkeeper-ipkeys-'));
    const storage = new FileStorage({ root });
    try {
      const keys = certificateKeys('ca.test-dir', '2001:db8::7');
      await storage.store(keys.cert, Buffer.from('cert'));
      assert.equal((await storage.load(keys.cert)).toString(), 'cert');
      assert.deepEqual(await storage.list('certificates/ca.test-dir', false), ['certificates/ca.test-dir/2001_db8__7']);
      await storage.lock(certificateLockName('2001:db8::7'));
      await storage.unlock(certificateLockName('2001:db8::7'));
      assert.deepEqual(await readdir(join(root, 'certificates', 'ca.test-dir')), ['2001_db8__7']);
    } finally {
      await storage.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
