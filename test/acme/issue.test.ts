import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { chainIssuerNames } from '../../src/acme/chain.js';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { AbortedError, ClosedError, InvalidNameError, NoSolverError, TermsNotAgreedError } from '../../src/errors.js';
import { AcmeIssuer } from '../../src/issuers/acme.js';
import type { Identifier } from '../../src/names.js';
import type { ChallengeContext, Solver } from '../../src/challenges/types.js';
import { accountKeys } from '../../src/storage/layout.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { RecordingSolver, captureLogger, ids, leafSans, pebbleIssuer, untilAborted } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');
const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function newAccountCalls(pebble: PebbleHandle): number {
  return pebble.output().match(/POST \/sign-me-up/g)?.length ?? 0;
}

function commonName(dn: string): string | undefined {
  return /^CN=(.*)$/m.exec(dn)?.[1];
}

describe('AcmeIssuer against Pebble (challenges always valid)', { skip }, () => {
  let pebble: PebbleHandle;
  const issuers: AcmeIssuer[] = [];
  const track = (issuer: AcmeIssuer): AcmeIssuer => {
    issuers.push(issuer);
    return issuer;
  };
  before(async () => {
    pebble = await startPebble({ alwaysValid: true, env: { PEBBLE_ALTERNATE_ROOTS: '1' } });
  });
  after(async () => {
    await Promise.all(issuers.map((i) => i.close()));
    await pebble?.stop();
  });

  it('issues a chain for DNS names and an IP address, verifying to the Pebble root', async () => {
    const solver = new RecordingSolver();
    const issuer = track(pebbleIssuer(pebble, { solvers: { 'http-01': solver } }));
    const identifiers = ids('a.example.test', 'b.example.test', '127.0.0.1');
    const { csr, keyPem } = await createKeyAndCsr(identifiers);
    const before = pebble.issuedCount();
    const result = await issuer.issue({ identifiers, csr });
    assert.deepEqual(leafSans(result.chainPem), ['DNS:a.example.test', 'DNS:b.example.test', 'IP Address:127.0.0.1']);
    const certs = result.chainPem.match(CERT_BLOCK) ?? [];
    assert.ok(certs.length >= 2);
    assert.ok(new X509Certificate(certs[0] as string).checkPrivateKey(createPrivateKey(keyPem)));
    const root = new X509Certificate(await pebble.rootPem());
    const top = new X509Certificate(certs[certs.length - 1] as string);
    assert.ok(top.verify(root.publicKey), 'the top of the default chain is signed by the Pebble root');
    assert.deepEqual(solver.presented.map((c) => c.identifier.value).sort(), ['127.0.0.1', 'a.example.test', 'b.example.test']);
    assert.equal(solver.cleaned.length, 3, 'every presented challenge is cleaned up');
    assert.ok(solver.presented.every((c) => c.type === 'http-01' && c.keyAuthorization.startsWith(`${c.token}.`)));
    assert.equal(pebble.issuedCount(), before + 1);
  });

  it('reuses the stored account: a second issuer on the same storage registers no new account', async () => {
    const storage = new MemoryStorage();
    const first = track(pebbleIssuer(pebble, { storage }));
    const identifiers = ids('reuse.example.test');
    const accountsBefore = newAccountCalls(pebble);
    const r1 = await first.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
    assert.equal(newAccountCalls(pebble), accountsBefore + 1);
    const second = track(pebbleIssuer(pebble, { storage }));
    const r2 = await second.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
    assert.equal(newAccountCalls(pebble), accountsBefore + 1, 'no newAccount request for the second issuer');
    assert.equal(r2.issuerData?.accountUrl, r1.issuerData?.accountUrl);
    const meta = JSON.parse((await storage.load(accountKeys(first.key, 'admin@example.test').meta)).toString()) as { url: string };
    assert.equal(meta.url, r1.issuerData?.accountUrl);
  });

  it('registers one account when several issuers sharing storage start at once', async () => {
    const storage = new MemoryStorage();
    const accountsBefore = newAccountCalls(pebble);
    const results = await Promise.all(
      ['c1', 'c2', 'c3'].map(async (label) => {
        const identifiers = ids(`${label}.example.test`);
        return track(pebbleIssuer(pebble, { storage })).issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
      }),
    );
    assert.equal(newAccountCalls(pebble), accountsBefore + 1);
    assert.equal(new Set(results.map((r) => r.issuerData?.accountUrl)).size, 1);
  });

  it('refuses to register without agreeToTerms, naming the terms URL, and stores nothing', async () => {
    const storage = new MemoryStorage();
    const issuer = track(pebbleIssuer(pebble, { storage, agreeToTerms: false }));
    const identifiers = ids('terms.example.test');
    const accountsBefore = newAccountCalls(pebble);
    await assert.rejects(issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr }), (error: unknown) => {
      assert.ok(error instanceof TermsNotAgreedError);
      assert.equal(error.code, 'ERR_TERMS_NOT_AGREED');
      assert.ok(error.termsOfServiceUrl && error.termsOfServiceUrl.length > 0);
      assert.ok(error.message.includes(error.termsOfServiceUrl));
      return true;
    });
    assert.equal(newAccountCalls(pebble), accountsBefore);
    assert.equal(await storage.exists('acme'), false);
  });

  it('rejects invalid identifiers before contacting the CA', async () => {
    // Directory on a closed port: any CA contact would fail with AcmeUnreachableError instead.
    const issuer = track(
      new AcmeIssuer({ directoryUrl: 'https://127.0.0.1:1/dir', agreeToTerms: true, storage: new MemoryStorage(), solvers: { 'http-01': new RecordingSolver() } }),
    );
    const good = ids('ok.example.test');
    const csr = (await createKeyAndCsr(good)).csr;
    const bad: Identifier[][] = [
      [{ type: 'dns', value: 'bad..example.test', wildcard: false }],
      [{ type: 'dns', value: 'UPPER.example.test', wildcard: false }],
      [{ type: 'dns', value: 'a.*.example.test', wildcard: false }],
      [{ type: 'dns', value: `${'x'.repeat(64)}.example.test`, wildcard: false }],
      [{ type: 'dns', value: 'under_score.example.test', wildcard: false }],
      [{ type: 'ip', value: '999.1.1.1', wildcard: false }],
      [{ type: 'dns', value: '127.0.0.1', wildcard: false }],
      [{ type: 'dns', value: 'bücher.example', wildcard: false }],
      [],
    ];
    for (const identifiers of bad) {
      await assert.rejects(issuer.issue({ identifiers, csr }), InvalidNameError, JSON.stringify(identifiers));
    }
  });

  it('fails with NoSolverError when no configured solver fits (wildcards need dns-01)', async () => {
    const issuer = track(pebbleIssuer(pebble));
    const identifiers = ids('*.wild.example.test');
    await assert.rejects(issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr }), NoSolverError);
  });

  it('passes wildcard identifiers to the dns-01 solver', async () => {
    const dns = new RecordingSolver();
    const issuer = track(pebbleIssuer(pebble, { solvers: { 'http-01': new RecordingSolver(), 'dns-01': dns } }));
    const identifiers = ids('*.wild2.example.test', 'wild2.example.test');
    const result = await issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
    assert.deepEqual(leafSans(result.chainPem), ['DNS:*.wild2.example.test', 'DNS:wild2.example.test']);
    const wildcard = dns.presented.find((c) => c.identifier.wildcard);
    assert.deepEqual(wildcard?.identifier, { type: 'dns', value: '*.wild2.example.test', wildcard: true });
    assert.equal(wildcard?.type, 'dns-01');
  });

  it('stops on abort and still cleans up the presented challenge', async () => {
    const controller = new AbortController();
    const cleaned: ChallengeContext[] = [];
    const solver: Solver = {
      async present() {
        controller.abort();
      },
      async cleanUp(challenge) {
        cleaned.push(challenge);
      },
    };
    const issuer = track(pebbleIssuer(pebble, { solvers: { 'http-01': solver } }));
    const identifiers = ids('abort.example.test');
    const before = pebble.issuedCount();
    await assert.rejects(issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr, signal: controller.signal }), AbortedError);
    assert.equal(cleaned.length, 1);
    assert.equal(pebble.issuedCount(), before);
  });

  it('close() stops an issuance in flight, after its clean-up, and refuses new ones', async () => {
    const cleaned: string[] = [];
    let presented!: () => void;
    const isPresented = new Promise<void>((resolve) => { presented = resolve; });
    const solver: Solver = {
      async present() {
        presented();
      },
      async wait(challenge) {
        await untilAborted(challenge.signal);
      },
      async cleanUp(challenge) {
        cleaned.push(challenge.identifier.value);
      },
    };
    const issuer = pebbleIssuer(pebble, { solvers: { 'http-01': solver } });
    const identifiers = ids('close.example.test');
    const pending = issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
    pending.catch(() => undefined);
    await isPresented;
    await issuer.close();
    assert.deepEqual(cleaned, ['close.example.test'], 'clean-up ran before close() resolved');
    await assert.rejects(pending, (e: unknown) => ['ERR_CLOSED', 'ERR_ABORTED'].includes((e as { code?: string }).code ?? ''));
    await assert.rejects(issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr }), ClosedError);
    await issuer.close(); // idempotent
  });

  it('picks the alternate chain by issuer common name, and the default chain when none matches', async () => {
    const defaultRootCn = commonName(new X509Certificate(await pebble.rootPem(0)).subject);
    const alternateRootCn = commonName(new X509Certificate(await pebble.rootPem(1)).subject);
    assert.ok(defaultRootCn && alternateRootCn && defaultRootCn !== alternateRootCn);
    const identifiers = ids('chain.example.test');
    const preferred = track(pebbleIssuer(pebble, { preferredChain: alternateRootCn }));
    const alt = await preferred.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
    assert.equal(chainIssuerNames(alt.chainPem).at(-1), alternateRootCn);
    const unknown = track(pebbleIssuer(pebble, { preferredChain: 'No Such Root' }));
    const fallback = await unknown.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
    assert.equal(chainIssuerNames(fallback.chainPem).at(-1), defaultRootCn);
  });

  it('revokes an issued certificate with a reason code', async () => {
    const issuer = track(pebbleIssuer(pebble));
    const identifiers = ids('revoke.example.test');
    const { chainPem } = await issuer.issue({ identifiers, csr: (await createKeyAndCsr(identifiers)).csr });
    await issuer.revoke(chainPem, 4);
    const serial = new X509Certificate(chainPem).serialNumber.toLowerCase();
    const res = await fetchManagement(pebble, `/cert-status-by-serial/${serial}`);
    assert.match(res, /"Status":\s*"Revoked"/i);
    assert.match(res, /"Reason":\s*4/);
    // A second revocation is refused by the CA as a typed problem.
    await assert.rejects(issuer.revoke(chainPem, 4), (e: unknown) => (e as { code?: string }).code === 'ERR_ACME_PROBLEM');
  });

  it('logs at debug level without private keys, account key material or CSR keys', async () => {
    const { logger, text } = captureLogger();
    const storage = new MemoryStorage();
    const issuer = track(pebbleIssuer(pebble, { storage, logger }));
    const identifiers = ids('log.example.test');
    const { csr, keyPem } = await createKeyAndCsr(identifiers);
    await issuer.issue({ identifiers, csr });
    const log = text();
    assert.ok(log.includes('acme request'), 'the ACME requests reach the injected logger');
    assert.ok(!log.includes('PRIVATE KEY'));
    const accountPem = (await storage.load(accountKeys(issuer.key, 'admin@example.test').key)).toString();
    for (const pem of [accountPem, keyPem]) {
      const jwk = createPrivateKey(pem).export({ format: 'jwk' });
      assert.ok(jwk.d && !log.includes(jwk.d), 'no private scalar in the log');
      for (const line of pem.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'))) {
        assert.ok(!log.includes(line), 'no line of the private key PEM in the log');
      }
    }
  });
});

async function fetchManagement(pebble: PebbleHandle, path: string): Promise<string> {
  const https = await import('node:https');
  return new Promise((resolve, reject) => {
    https
      .get(`${pebble.managementUrl}${path}`, { ca: pebble.pebbleCaPem, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { body += c; });
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}
