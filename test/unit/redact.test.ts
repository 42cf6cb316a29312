import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRedactor, redact, REDACTED, tail } from '../../src/redact.js';

describe('redact', () => {
  it('removes known secret values, also URL-encoded and base64, longest first; ignores values under 4 characters', () => {
    const r = createRedactor({ secrets: ['s3cr/t+v', 's3cr/t+value', '60'] });
    const out = r('a s3cr/t+value b s3cr%2Ft%2Bv c czNjci90K3Y d ttl 60');
    assert.equal(out, `a ${REDACTED} b ${REDACTED} c ${REDACTED} d ttl 60`);
  });

  it('removes credential headers, auth schemes, key=value and JSON secrets, URL user-info and PEM private keys', () => {
    const cases: [string, string][] = [
      ['> Authorization: Bearer abc.def-123', 'abc.def-123'],
      ['> proxy-authorization: Basic dXNlcjpwYXNz', 'dXNlcjpwYXNz'],
      ['> Cookie: session=77aa', '77aa'],
      ['> X-Api-Key: k-999', 'k-999'],
      ['token is Bearer zzzzyyyy', 'zzzzyyyy'],
      ['GET /x?token=t0k3n&zone=a', 't0k3n'],
      ['PDNS_API_KEY=abcd1234 next', 'abcd1234'],
      ['password: hunter22', 'hunter22'],
      ['{"api_key": "k\\"ey9", "id": 7}', 'k\\"ey9'],
      ['https://admin:pw9999@dns.test/', 'pw9999'],
      ['-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----', 'MHcCAQEE'],
      ['MHcCAQEE\n-----END PRIVATE KEY-----\nafter', 'MHcCAQEE'],
      ['-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIB (cut off)', 'MIIEpAIB'],
    ];
    for (const [input, secret] of cases) {
      const out = redact(input);
      assert.ok(!out.includes(secret), `${JSON.stringify(input)} -> ${JSON.stringify(out)}`);
    }
    assert.equal(redact('zone example.test, status 401 Unauthorized'), 'zone example.test, status 401 Unauthorized', 'ordinary text stays');
  });
});

describe('tail', () => {
  it('keeps the last lines and bytes, marking the cut', () => {
    assert.equal(tail('a\nb\nc\n', { maxLines: 2 }), '…b\nc');
    assert.equal(tail('short'), 'short');
    assert.equal(tail('x'.repeat(50), { maxBytes: 10 }), `…${'x'.repeat(10)}`);
    assert.equal(tail('ééééé', { maxBytes: 3 }), '…é', 'no half character');
  });
});
