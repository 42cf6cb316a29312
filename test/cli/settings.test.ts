import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { resolveCliSettings, defaultDemoStorageRoot } from '../../src/cli/settings.js';
import { InvalidOptionError } from '../../src/errors.js';

describe('resolveCliSettings', () => {
  const cwd = '/work/here';

  test('each setting: flag > env > file > default', () => {
    const file = { ca: 'https://file.example/dir', httpPort: 1001, email: 'file@example.test', agreeToTerms: false, logLevel: 'info' };
    const env = { CERTKEEPER_CA: 'https://env.example/dir', CERTKEEPER_HTTP_PORT: '2002', CERTKEEPER_AGREE_TO_TERMS: 'yes' };
    const flags = { ca: 'https://flag.example/dir' };
    const s = resolveCliSettings({ flags, env, file, fileDir: '/etc/certkeeper', cwd });
    assert.equal(s.ca, 'https://flag.example/dir');
    assert.equal(s.httpPort, 2002);
    assert.equal(s.agreeToTerms, true);
    assert.equal(s.email, 'file@example.test');
    assert.equal(s.logLevel, 'info');
    assert.equal(s.tlsAlpnPort, 443);
    assert.equal(s.issuer, 'acme');
    assert.equal(resolveCliSettings({ flags: {}, env: { HOME: '/home/u' }, cwd }).storage, join('/home/u', '.local', 'share', 'certkeeper'));
  });

  test('an explicit false in the environment wins over true in the file; empty env values are ignored', () => {
    const s = resolveCliSettings({ flags: {}, env: { CERTKEEPER_AGREE_TO_TERMS: '0', CERTKEEPER_EMAIL: '' }, file: { agreeToTerms: true, email: 'a@b.test' }, cwd });
    assert.equal(s.agreeToTerms, false);
    assert.equal(s.email, 'a@b.test');
  });

  test('paths: relative flags/env against the working directory, relative file values against the file', () => {
    assert.equal(resolveCliSettings({ flags: { storage: 's' }, env: {}, cwd }).storage, '/work/here/s');
    assert.equal(resolveCliSettings({ flags: {}, env: { CERTKEEPER_CA_ROOT: 'ca.pem' }, cwd }).caRoot, '/work/here/ca.pem');
    assert.equal(resolveCliSettings({ flags: {}, env: {}, file: { storage: 'data' }, fileDir: '/etc/ck', cwd }).storage, '/etc/ck/data');
    assert.equal(resolveCliSettings({ flags: {}, env: { XDG_DATA_HOME: '/x' }, cwd }).storage, '/x/certkeeper');
    assert.equal(defaultDemoStorageRoot({ XDG_DATA_HOME: '/x' }), '/x/certkeeper-demo');
    assert.equal(defaultDemoStorageRoot({ XDG_DATA_HOME: 'relative', HOME: '/home/u' }), '/home/u/.local/share/certkeeper-demo');
  });

  test('bad values name their source', () => {
    assert.throws(() => resolveCliSettings({ flags: {}, env: { CERTKEEPER_HTTP_PORT: '70000' }, cwd }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'CERTKEEPER_HTTP_PORT');
    assert.throws(() => resolveCliSettings({ flags: { issuer: 'self' }, env: {}, cwd }), (e: unknown) => e instanceof InvalidOptionError && e.option === '--issuer');
    assert.throws(() => resolveCliSettings({ flags: {}, env: {}, file: { agreeToTerms: 'maybe' }, cwd }), /config file "agreeToTerms"/);
  });
});
