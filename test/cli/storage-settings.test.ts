/** How the CLI's `storage` setting takes a storage URL: kept as given, file: made a path, a bad scheme refused early. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { resolveCliSettings } from '../../src/cli/settings.js';

describe('the storage setting', () => {
  const cwd = '/work/here';
  const storage = (sources: { flags?: Record<string, unknown>; env?: NodeJS.ProcessEnv; file?: Record<string, unknown> }): string =>
    resolveCliSettings({ flags: sources.flags ?? {}, env: sources.env ?? {}, file: sources.file, fileDir: '/etc/certkeeper', cwd }).storage;

  test('a backend URL is kept as given, from a flag, the environment or the file', () => {
    assert.equal(storage({ flags: { storage: 'redis://:pw@h:6379/0?prefix=a:' } }), 'redis://:pw@h:6379/0?prefix=a:');
    assert.equal(storage({ env: { CERTKEEPER_STORAGE: 'postgres://u@h/db?schema=s' } }), 'postgres://u@h/db?schema=s');
    assert.equal(storage({ file: { storage: 'etcd://h:2379/ck' } }), 'etcd://h:2379/ck');
  });

  test('file: URLs and paths become absolute directories (relative ones against the config file in the file)', () => {
    assert.equal(storage({ flags: { storage: 'file:///var/lib/ck' } }), '/var/lib/ck');
    assert.equal(storage({ flags: { storage: 'file:rel' } }), '/work/here/rel');
    assert.equal(storage({ file: { storage: 'file:rel' } }), '/etc/certkeeper/rel');
    assert.equal(storage({ file: { storage: 'rel' } }), '/etc/certkeeper/rel');
  });

  test('an unknown scheme is a usage error naming where it came from', () => {
    assert.throws(() => storage({ flags: { storage: 'ftp://h/x' } }), { code: 'ERR_INVALID_OPTION', message: /--storage.*unsupported storage URL scheme "ftp:"/ });
    assert.throws(() => storage({ env: { CERTKEEPER_STORAGE: 'ftp://h/x' } }), { code: 'ERR_INVALID_OPTION', message: /CERTKEEPER_STORAGE/ });
  });
});
