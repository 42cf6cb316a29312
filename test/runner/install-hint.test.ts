import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { installLine } from '../helpers/system.js';

describe('the install hint for missing test servers', () => {
  it('is one apt-get line naming each package once', () => {
    assert.equal(installLine(['named', 'nsupdate', 'dig']), 'apt-get install -y bind9 bind9-dnsutils');
    assert.equal(installLine(['pebble', 'pebble-challtestsrv', 'named']), 'apt-get install -y pebble bind9 bind9-dnsutils');
  });
});
