import assert from 'node:assert/strict';
import { createHash, createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, verify, type JsonWebKey } from 'node:crypto';
import { describe, it } from 'node:test';
import { AccountKey } from '../../src/acme/jws.js';

const pem = (type: 'ec' | 'rsa', opts: Record<string, unknown>): string =>
  generateKeyPairSync(type as 'ec', opts as { namedCurve: string }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const decode = (b64u: string): Record<string, unknown> => JSON.parse(Buffer.from(b64u, 'base64url').toString('utf8')) as Record<string, unknown>;

describe('ACME JWS (node:crypto)', () => {
  for (const [curve, alg, hash] of [['P-256', 'ES256', 'sha256'], ['P-384', 'ES384', 'sha384'], ['P-521', 'ES512', 'sha512']] as const) {
    it(`signs with ${alg} for a ${curve} key, r||s, verifiable with the JWK`, () => {
      const key = new AccountKey(pem('ec', { namedCurve: curve }));
      assert.equal(key.alg, alg);
      const jws = key.sign('https://ca.test/new-order', { identifiers: [] }, 'nonce-1', 'https://ca.test/acct/1');
      const header = decode(jws.protected);
      assert.deepEqual(header, { alg, nonce: 'nonce-1', url: 'https://ca.test/new-order', kid: 'https://ca.test/acct/1' });
      assert.deepEqual(decode(jws.payload), { identifiers: [] });
      const pub = createPublicKey({ key: key.jwk as unknown as JsonWebKey, format: 'jwk' });
      const ok = verify(hash, Buffer.from(`${jws.protected}.${jws.payload}`), { key: pub, dsaEncoding: 'ieee-p1363' }, Buffer.from(jws.signature, 'base64url'));
      assert.ok(ok, 'signature verifies');
    });
  }

  it('signs with RS256 and the JWK (no kid) for newAccount; POST-as-GET has an empty payload', () => {
    const key = new AccountKey(pem('rsa', { modulusLength: 2048 }));
    assert.equal(key.alg, 'RS256');
    const jws = key.sign('https://ca.test/x', null, 'n', undefined);
    const header = decode(jws.protected);
    assert.deepEqual(Object.keys(header.jwk as object), ['e', 'kty', 'n']);
    assert.equal(header.kid, undefined);
    assert.equal(jws.payload, '');
    const pub = createPublicKey({ key: key.jwk as unknown as JsonWebKey, format: 'jwk' });
    assert.ok(verify('sha256', Buffer.from(`${jws.protected}.`), pub, Buffer.from(jws.signature, 'base64url')));
  });

  it('computes the RFC 7638 thumbprint and the key authorization', () => {
    // RFC 7638 3.1 example key.
    const n = '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw';
    const jwk = { kty: 'RSA', n, e: 'AQAB', d: 'X4cTteJY_gn4FYPsXB8rdXix5vwsg1FLN5E3EaG6RJoVH-HLLKD9M7dx5oo7GURknchnrRweUkC7hT5fJLM0WbFAKNLWY2vv7B6NqXSzUvxT0_YSfqijwp3RTzlBaCxWp4doFk5N2o8Gy_nHNKroADIkJ46pRUohsXywbReAdYaMwFs9tv8d_cPVY3i07a3t8MN6TNwm0dSawm9v47UiCl3Sk5ZiG7xojPLu4sbg1U2jx4IBTNBznbJSzFHK66jT8bgkuqsk0GjskDJk19Z4qwjwbsnn4j2WBii3RL-Us2lGVkY8fkFzme1z0HbIkfz0Y6mqnOYtqc0X4jfcKoAC8Q', p: '83i-7IvMGXoMXCskv73TKr8637FiO7Z27zv8oj6pbWUQyLPQBQxtPVnwD20R-60eTDmD2ujnMt5PoqMrm8RfmNhVWDtjjMmCMjOpSXicFHj7XOuVIYQyqVWlWEh6dN36GVZYk93N8Bc9vY41xy8B9RzzOGVQzXvNEvn7O0nVbfs', q: '3dfOR9cuYq-0S-mkFLzgItgMEfFzB2q3hWehMuG0oCuqnb3vobLyumqjVZQO1dIrdwgTnCdpYzBcOfW5r370AFXjiWft_NGEiovonizhKpo9VVS78TzFgxkIdrecRezsZ-1kYd_s1qDbxtkDEgfAITAG9LUnADun4vIcb6yelxk', dp: 'G4sPXkc6Ya9y8oJW9_ILj4xuppu0lzi_H7VTkS8xj5SdX3coE0oimYwxIi2emTAue0UOa5dpgFGyBJ4c8tQ2VF402XRugKDTP8akYhFo5tAA77Qe_NmtuYZc3C3m3I24G2GvR5sSDxUyAN2zq8Lfn9EUms6rY3Ob8YeiKkTiBj0', dq: 's9lAH9fggBsoFR8Oac2R_E2gw282rT2kGOAhvIllETE1efrA6huUUvMfBcMpn8lqeW6vzznYY5SSQF7pMdC_agI3nG8Ibp1BUb0JUiraRNqUfLhcQb_d9GF4Dh7e74WbRsobRonujTYN1xCaP6TO61jvWrX-L18txXw494Q_cgk', qi: 'GyM_p6JrXySiz1toFgKbWV-JdI3jQ4ypu9rbMWx3rQJBfmt0FoYzgUIZEVFEcOqwemRN81zoDAaa-Bk0KWNGDjJHZDdDmFhW3AN7lI-puxk_mHZGJ11rxyR8O55XLSe3SPmRfKwZI6yU24ZxvQKFYItdldUKGzO6Ia6zTKhAVRU' };
    const keyPem = createPrivateKey({ key: jwk, format: 'jwk' }).export({ type: 'pkcs8', format: 'pem' }).toString();
    const key = new AccountKey(keyPem);
    assert.equal(key.thumbprint, 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
    assert.equal(key.keyAuthorization('tok'), 'tok.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
    assert.equal(createHash('sha256').update(JSON.stringify(key.jwk)).digest('base64url'), key.thumbprint);
  });

  it('binds an external account with HS256 over the public JWK', () => {
    const key = new AccountKey(pem('ec', { namedCurve: 'P-256' }));
    const hmacKey = Buffer.from('a-secret-hmac-key-of-some-length').toString('base64url');
    const eab = key.externalAccountBinding('https://ca.test/new-acct', 'kid-1', hmacKey);
    assert.deepEqual(decode(eab.protected), { alg: 'HS256', kid: 'kid-1', url: 'https://ca.test/new-acct' });
    assert.deepEqual(decode(eab.payload), key.jwk);
    const mac = createHmac('sha256', Buffer.from(hmacKey, 'base64url')).update(`${eab.protected}.${eab.payload}`).digest('base64url');
    assert.equal(eab.signature, mac);
    assert.ok(!JSON.stringify(eab).includes(hmacKey), 'the HMAC key is not in the binding');
  });

  it('refuses a key that is not a private key, typed', () => {
    assert.throws(() => new AccountKey('not a key'), (e: unknown) => (e as { code?: string }).code === 'ERR_INVALID_OPTION');
  });
});
