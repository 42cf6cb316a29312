/**
 * JSON Web Signatures for ACME (RFC 8555 6.2, RFC 7515 flattened JSON) on
 * node:crypto: the account key signs every request (ES256/ES384/ES512 or
 * RS256, by key type), and an external account binding is an HS256 JWS over
 * the account's public JWK (RFC 8555 7.3.4). The key is parsed once.
 */
import { createHash, createHmac, createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { InvalidOptionError } from '../errors.js';

export interface FlattenedJws {
  protected: string;
  payload: string;
  signature: string;
}

type Jwk = Record<string, string>;

const b64u = (text: string): string => Buffer.from(text, 'utf8').toString('base64url');

/** JWS alg and digest per curve (RFC 7518 3.4). */
const EC_ALGORITHMS: Record<string, { alg: string; hash: string }> = {
  'P-256': { alg: 'ES256', hash: 'sha256' },
  'P-384': { alg: 'ES384', hash: 'sha384' },
  'P-521': { alg: 'ES512', hash: 'sha512' },
};

export class AccountKey {
  readonly #key: KeyObject;
  readonly alg: string;
  readonly #hash: string;
  /** The public JWK with only its required members (RFC 7638 3.2), in their lexicographic order. */
  readonly jwk: Readonly<Jwk>;
  /** RFC 7638 thumbprint, base64url. */
  readonly thumbprint: string;

  constructor(keyPem: string) {
    let key: KeyObject;
    try {
      key = createPrivateKey(keyPem);
    } catch (error) {
      throw new InvalidOptionError('accountKey', 'is not a PEM private key', { cause: error });
    }
    const pub = createPublicKey(key).export({ format: 'jwk' }) as Jwk;
    if (pub.kty === 'EC') {
      const algorithm = EC_ALGORITHMS[pub.crv ?? ''];
      if (!algorithm) throw new InvalidOptionError('accountKey', `has an unsupported curve (${pub.crv})`);
      this.alg = algorithm.alg;
      this.#hash = algorithm.hash;
      this.jwk = { crv: pub.crv as string, kty: 'EC', x: pub.x as string, y: pub.y as string };
    } else if (pub.kty === 'RSA') {
      this.alg = 'RS256';
      this.#hash = 'sha256';
      this.jwk = { e: pub.e as string, kty: 'RSA', n: pub.n as string };
    } else {
      throw new InvalidOptionError('accountKey', 'must be an EC or RSA key');
    }
    this.#key = key;
    this.thumbprint = createHash('sha256').update(JSON.stringify(this.jwk)).digest('base64url');
  }

  /**
   * A signed request body. `kid` set: signed with the account URL; else with the JWK
   * (newAccount). `payload` null is POST-as-GET (empty payload).
   */
  sign(url: string, payload: unknown, nonce: string, kid: string | undefined): FlattenedJws {
    const header = { alg: this.alg, nonce, url, ...(kid !== undefined ? { kid } : { jwk: this.jwk }) };
    const protectedB64 = b64u(JSON.stringify(header));
    const payloadB64 = payload === null ? '' : b64u(JSON.stringify(payload));
    // ieee-p1363: JWS wants the raw r||s form for ECDSA (RFC 7518 3.4), not DER; RSA ignores it.
    const signature = sign(this.#hash, Buffer.from(`${protectedB64}.${payloadB64}`, 'ascii'), { key: this.#key, dsaEncoding: 'ieee-p1363' });
    return { protected: protectedB64, payload: payloadB64, signature: signature.toString('base64url') };
  }

  /** RFC 8555 7.3.4: the EAB JWS binding this key to the CA's `kid`, MACed with its key (base64url). */
  externalAccountBinding(url: string, kid: string, hmacKey: string): FlattenedJws {
    const protectedB64 = b64u(JSON.stringify({ alg: 'HS256', kid, url }));
    const payloadB64 = b64u(JSON.stringify(this.jwk));
    // Node's base64 decoder reads both alphabets: a key given in either form works.
    const mac = createHmac('sha256', Buffer.from(hmacKey, 'base64')).update(`${protectedB64}.${payloadB64}`, 'ascii').digest();
    return { protected: protectedB64, payload: payloadB64, signature: mac.toString('base64url') };
  }

  /** RFC 8555 8.1 key authorization for a challenge token. */
  keyAuthorization(token: string): string {
    return `${token}.${this.thumbprint}`;
  }
}
