import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveConfig } from '../../src/config/index.js';
import { InvalidOptionError } from '../../src/errors.js';
import { AcmeIssuer } from '../../src/issuers/acme.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { silentLogger } from '../helpers/logging.js';

function rejection(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    assert.ok(error instanceof InvalidOptionError, `expected InvalidOptionError, got ${String(error)}`);
    return error.option;
  }
}

const keeperAccepts = (extra: object) => rejection(() => resolveConfig({ logger: silentLogger(), ...extra }));
const specAccepts = (extra: object) => rejection(() => resolveConfig({ logger: silentLogger(), issuers: [{ type: 'acme', ...extra }] }));
const issuerAccepts = (extra: object) => rejection(() => new AcmeIssuer({ storage: new MemoryStorage(), solvers: {}, ...extra }));

const KEY = Buffer.alloc(32, 0xfb).toString('base64'); // "+/v7..." : standard base64 with '+' and '/'
const EMAILS = ['ops@example.com', 'a.b+tag@sub.example.org', 'ops@localhost', 'ops@example.', 'ops@', '@example.com', 'a b@example.com', 'a@b.com,c@d.com', 'a@b.com?subject=x', 'ops@-x.com'];
const HMAC_KEYS = [
  KEY,
  KEY.replace(/=+$/, ''),
  Buffer.alloc(32, 0xfb).toString('base64url'),
  'abc',
  'a',
  'has space',
  'bad!chars',
  '',
  'mixed+and-alphabets',
];

describe('one option resolver', () => {
  it('the ACME issuer accepts exactly the e-mail addresses resolveConfig accepts', () => {
    for (const email of EMAILS) {
      const keeper = keeperAccepts({ email });
      assert.equal(specAccepts({ email }), keeper && `issuers[0].email`, `issuer spec vs keeper for ${email}`);
      assert.equal(issuerAccepts({ email }), keeper, `AcmeIssuer vs resolveConfig for ${email}`);
    }
    assert.equal(keeperAccepts({ email: 'ops@localhost' }), 'email', 'a dotless domain is refused up front');
    assert.equal(keeperAccepts({ email: 'ops@example.com' }), undefined);
  });

  it('the ACME issuer accepts exactly the EAB keys resolveConfig accepts', () => {
    for (const hmacKey of HMAC_KEYS) {
      const externalAccountBinding = { kid: 'kid-1', hmacKey };
      const keeper = keeperAccepts({ externalAccountBinding });
      assert.equal(specAccepts({ externalAccountBinding }), keeper && `issuers[0].${keeper}`, `issuer spec vs keeper for ${JSON.stringify(hmacKey)}`);
      assert.equal(issuerAccepts({ externalAccountBinding }), keeper, `AcmeIssuer vs resolveConfig for ${JSON.stringify(hmacKey)}`);
    }
    assert.equal(keeperAccepts({ externalAccountBinding: { kid: 'k', hmacKey: KEY } }), undefined, 'standard base64 is accepted');
  });

  it('normalises a standard base64 EAB key to the same base64url bytes', () => {
    const config = resolveConfig({ logger: silentLogger(), externalAccountBinding: { kid: 'k', hmacKey: KEY } });
    assert.equal(config.externalAccountBinding?.hmacKey, Buffer.alloc(32, 0xfb).toString('base64url'));
    const issuer = new AcmeIssuer({ storage: new MemoryStorage(), solvers: {}, externalAccountBinding: { kid: 'k', hmacKey: KEY } });
    assert.deepEqual(Buffer.from(issuer.config.externalAccountBinding!.hmacKey, 'base64url'), Buffer.alloc(32, 0xfb));
  });

  it('a keeper built with a key containing "+" constructs (the issuer it builds does not re-reject it)', async () => {
    const keeper = new CertKeeper({ storage: new MemoryStorage(), logger: silentLogger(), email: 'ops@example.com', externalAccountBinding: { kid: 'k', hmacKey: KEY } });
    await keeper.close();
  });

  it('a keeper with ops@localhost fails in resolveConfig, naming the option', () => {
    assert.throws(() => new CertKeeper({ storage: new MemoryStorage(), logger: silentLogger(), email: 'ops@localhost' }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'email' && /domain has a dot/.test(e.message));
  });
});

describe('defaults', () => {
  it('are defined once, in src/defaults.ts (other modules import or re-export them)', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const root = new URL('../../src/', import.meta.url).pathname;
    const definitions: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith('.ts') && path !== join(root, 'defaults.ts')) {
          for (const m of readFileSync(path, 'utf8').matchAll(/^\s*(?:export\s+)?const\s+(DEFAULT_[A-Z0-9_]+)\b/gm)) definitions.push(`${path.slice(root.length)}: ${m[1]}`);
        }
      }
    };
    walk(root);
    assert.deepEqual(definitions, []);
  });

  it('give one value per name: the load concurrency the manager uses is the exported one', async () => {
    const defaults = await import('../../src/defaults.js');
    const config = await import('../../src/config/index.js');
    const manager = await import('../../src/manager/keeper.js');
    assert.equal(config.DEFAULT_LOAD_CONCURRENCY, defaults.DEFAULT_LOAD_CONCURRENCY);
    assert.equal(manager.DEFAULT_LOAD_CONCURRENCY, defaults.DEFAULT_LOAD_CONCURRENCY);
    assert.notEqual(defaults.DEFAULT_ACME_REQUEST_TIMEOUT_MS, undefined);
    assert.notEqual(defaults.DEFAULT_HTTP_REQUEST_TIMEOUT_MS, undefined);
  });
});
