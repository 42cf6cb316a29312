/**
 * The issued chain is parsed once on the way from the CA to being served: the order's check parses each
 * certificate, and the key match, the served material and the revocation checker read those same objects.
 * X509Certificate is counted through node:crypto's builtin exports (every module's binding follows them).
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CertKeeper } from '../../src/manager/keeper.js';
import { FileStorage } from '../../src/storage/file.js';
import { silentLogger } from '../helpers/logging.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const Original = crypto.X509Certificate;
/** The PEM (or DER) each construction parsed, while counting. */
let parsed: string[] | undefined;

class CountingX509Certificate extends Original {
  constructor(buffer: crypto.BinaryLike) {
    super(buffer);
    parsed?.push(this.fingerprint256);
  }
}

describe('an obtained chain is parsed once', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;

  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-parse-once-'));
    crypto.X509Certificate = CountingX509Certificate;
    syncBuiltinESMExports();
  });
  after(async () => {
    crypto.X509Certificate = Original;
    syncBuiltinESMExports();
    await pebble?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('each certificate of the chain is parsed once from newOrder to served and watched for revocation', async () => {
    const keeper = new CertKeeper({
      ca: pebble.directoryUrl,
      caCertificates: pebble.pebbleCaPem,
      agreeToTerms: true,
      email: 'admin@example.test',
      storage: new FileStorage({ root: join(dir, 'storage') }),
      challenges: { http01: { port: pebble.httpPort, host: '127.0.0.1' }, tlsAlpn01: false as const },
      revocationCheck: { ocsp: true, crl: true },
      logger: silentLogger(),
    });
    try {
      // The account and the CA session first: what they parse is not the issued chain.
      await keeper.manageSync(['first.parse-once.test']);
      const name = 'second.parse-once.test';
      parsed = [];
      await keeper.manageSync([name]);
      // The revocation check runs on the next turns after the certificate is served.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const seen = parsed;
      parsed = undefined;
      const chain = keeper.status(name);
      assert.equal(chain.state, 'valid');
      assert.ok(seen.length >= 2, `the chain was parsed (${seen.length})`);
      assert.equal(new Set(seen).size, seen.length, `no certificate parsed twice: ${seen.join(', ')}`);
    } finally {
      parsed = undefined;
      await keeper.close();
    }
  });
});
