/**
 * The checker's pacing, on certificates made here and a local endpoint that
 * counts: one CRL fetch serves every certificate it covers, and requests to
 * one responder go one at a time however many certificates name it.
 */
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as x509 from '@peculiar/x509';
import { systemClock } from '../../src/clock.js';
import { resolveRevocationCheck, type ResolvedRevocationCheck } from '../../src/config/revocation.js';
import { newRecord, type ManagedRecord } from '../../src/renewal/managed-record.js';
import { RevocationChecker, type Revocation } from '../../src/revocation/checker.js';
import { parseIdentifier } from '../../src/names.js';
import { waitUntil } from '../faults/helpers.js';
import { captureLogger } from '../helpers/logging.js';

const crypto: webcrypto.Crypto = webcrypto;
const ECDSA = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const HOUR = 3_600_000;
const COUNT = 12;

describe('revocation checker pacing', () => {
  let server: http.Server;
  let base: string;
  let crl: Buffer;
  const seen = { crl: 0, ocsp: 0, inFlight: 0, maxInFlight: 0 };
  const records: ManagedRecord[] = [];
  /** A certificate naming no CRL and no responder. */
  let plain: ManagedRecord;

  before(async () => {
    server = http.createServer((req, res) => {
      const ocsp = req.url === '/ocsp';
      if (ocsp) seen.ocsp++;
      else seen.crl++;
      seen.inFlight++;
      seen.maxInFlight = Math.max(seen.maxInFlight, seen.inFlight);
      req.resume();
      // A slow endpoint: overlapping requests would show in maxInFlight.
      setTimeout(() => {
        seen.inFlight--;
        if (ocsp) res.writeHead(503).end();
        else res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(crl);
      }, 20);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const caKeys = (await crypto.subtle.generateKey(ECDSA, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const ca = await x509.X509CertificateGenerator.createSelfSigned(
      { serialNumber: '01', name: 'CN=Pacing CA', notBefore: new Date(Date.now() - HOUR), notAfter: new Date(Date.now() + 24 * HOUR), keys: caKeys, signingAlgorithm: ECDSA, extensions: [new x509.BasicConstraintsExtension(true, 0, true)] },
      crypto,
    );
    crl = Buffer.from(
      (await x509.X509CrlGenerator.create({ issuer: ca.subject, thisUpdate: new Date(Date.now() - 1000), nextUpdate: new Date(Date.now() + HOUR), signingKey: caKeys.privateKey, signingAlgorithm: ECDSA }, crypto)).rawData,
    );
    for (let i = 0; i < COUNT; i++) {
      const keys = (await crypto.subtle.generateKey(ECDSA, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const leaf = await x509.X509CertificateGenerator.create(
        {
          serialNumber: (0x1000 + i).toString(16),
          subject: `CN=n${i}.example.test`,
          issuer: ca.subject,
          notBefore: new Date(Date.now() - HOUR),
          notAfter: new Date(Date.now() + 24 * HOUR),
          publicKey: keys.publicKey,
          signingKey: caKeys.privateKey,
          signingAlgorithm: ECDSA,
          extensions: [new x509.CRLDistributionPointsExtension([`${base}/crl`]), new x509.AuthorityInfoAccessExtension({ ocsp: [`${base}/ocsp`] })],
        },
        crypto,
      );
      const record = newRecord([parseIdentifier(`n${i}.example.test`)], { issuers: [], keyType: 'ecdsa-p256' });
      record.certPem = `${leaf.toString('pem')}\n${ca.toString('pem')}`;
      record.serialNumber = leaf.serialNumber.toUpperCase();
      records.push(record);
    }
    const plainKeys = (await crypto.subtle.generateKey(ECDSA, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const plainLeaf = await x509.X509CertificateGenerator.create(
      { serialNumber: '2000', subject: 'CN=plain.example.test', issuer: ca.subject, notBefore: new Date(Date.now() - HOUR), notAfter: new Date(Date.now() + 24 * HOUR), publicKey: plainKeys.publicKey, signingKey: caKeys.privateKey, signingAlgorithm: ECDSA },
      crypto,
    );
    plain = newRecord([parseIdentifier('plain.example.test')], { issuers: [], keyType: 'ecdsa-p256' });
    plain.certPem = `${plainLeaf.toString('pem')}\n${ca.toString('pem')}`;
    plain.serialNumber = plainLeaf.serialNumber.toUpperCase();
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('one CRL fetch for all its certificates; one request at a time to the endpoint; a failing responder asked and logged once per interval', async () => {
    const { logger, text } = captureLogger('debug');
    const config = resolveRevocationCheck({ retries: 0 }) as ResolvedRevocationCheck;
    const revoked: Revocation[] = [];
    const work: Promise<unknown>[] = [];
    const checker = new RevocationChecker({
      config,
      clock: systemClock,
      logger,
      lookup: (certName) => records.find((r) => r.certName === certName),
      onRevoked: (_record, revocation) => revoked.push(revocation),
      track: (promise) => {
        work.push(promise);
        return promise;
      },
    });
    try {
      for (const record of records) checker.watch(record);
      await waitUntil(() => work.length === COUNT, 'every certificate to be checked');
      await Promise.all(work);
      assert.equal(seen.crl, 1, 'one CRL fetch served all certificates');
      assert.equal(checker.crlFetches, 1);
      assert.equal(seen.ocsp, 1, 'the responder failed (503): not asked again for the other certificates this interval');
      const warnings = text().split('\n').filter((line) => line.includes('ERR_REVOCATION_FETCH'));
      assert.equal(warnings.length, 1, 'one warn line, not one per certificate');
      assert.match(warnings[0] as string, /HTTP 503/);
      assert.equal(seen.maxInFlight, 1, 'never two requests at once to one endpoint');
      assert.deepEqual(revoked, []);
    } finally {
      await checker.close();
    }
  });

  it('keeps a parsed target only for a held chain that names an endpoint; an evicted record is checked from its stored chain', async () => {
    const config = resolveRevocationCheck({ retries: 0 }) as ResolvedRevocationCheck;
    const work: Promise<unknown>[] = [];
    const held = records.slice(0, COUNT / 2);
    // The other half stands for records whose context was evicted: no chain in memory, the stored one read back.
    const evicted = records.slice(COUNT / 2).map((record) => {
      const copy = newRecord(record.identifiers, record.settings);
      copy.serialNumber = record.serialNumber;
      return { copy, pem: record.certPem as string };
    });
    const all = [...held, ...evicted.map((e) => e.copy), plain];
    const asked: string[] = [];
    const checker = new RevocationChecker({
      config,
      clock: systemClock,
      logger: captureLogger('debug').logger,
      lookup: (certName) => all.find((r) => r.certName === certName),
      certificatePem: async (record) => {
        asked.push(record.certName);
        return evicted.find((e) => e.copy === record)?.pem;
      },
      onRevoked: () => undefined,
      track: (promise) => {
        work.push(promise);
        return promise;
      },
    });
    try {
      for (const record of all) checker.watch(record);
      await waitUntil(() => work.length === all.length, 'every certificate to be checked');
      await Promise.all(work);
      assert.deepEqual(asked.sort(), evicted.map((e) => e.copy.certName).sort(), 'only records without a chain in memory are read back');
      assert.equal(checker.targetsHeld, held.length, 'no target for an evicted record or for a certificate naming no endpoint');
      checker.release(held[0]?.certName as string);
      assert.equal(checker.targetsHeld, held.length - 1, 'release drops the evicted record’s target');
    } finally {
      await checker.close();
    }
  });
});
