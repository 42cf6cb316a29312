/**
 * IP-address identifiers (RFC 8738) on the client side, without a CA: only
 * HTTP-01 and TLS-ALPN-01 validate them (DNS-01 is refused before any order and
 * never presented, whatever the CA offers), and an order naming one asks for
 * the directory's IP-capable profile when no profile is configured.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertIpSolvable, profileForIdentifiers } from '../../src/acme/ip-identifiers.js';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import type { AcmeConnection } from '../../src/acme/connection.js';
import type { AcmeDirectory } from '../../src/acme/directories.js';
import { runOrder, type OrderContext } from '../../src/acme/order.js';
import type { ChallengeContext, Solver } from '../../src/challenges/types.js';
import { IpChallengeError, NoSolverError } from '../../src/errors.js';
import { AcmeIssuer } from '../../src/issuers/acme.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { ids, RecordingSolver } from './helpers.js';
import { silentLogger } from '../helpers/logging.js';

const directory = (profiles?: Record<string, string>): AcmeDirectory => ({
  newNonce: 'https://ca.test/nonce',
  newAccount: 'https://ca.test/account',
  newOrder: 'https://ca.test/order',
  ...(profiles ? { meta: { profiles } } : {}),
});

const LE_PROFILES = { classic: '90 days', tlsserver: '45 days', shortlived: '160 hours' };

describe('profileForIdentifiers', () => {
  it('asks for shortlived when the order names an IP address and no profile is configured', () => {
    assert.equal(profileForIdentifiers(ids('127.0.0.1'), directory(LE_PROFILES)), 'shortlived');
    assert.equal(profileForIdentifiers(ids('www.example.test', '::1'), directory(LE_PROFILES)), 'shortlived');
  });

  it('names no profile for DNS names only, for a CA without profiles or without an IP-capable one', () => {
    assert.equal(profileForIdentifiers(ids('www.example.test'), directory(LE_PROFILES)), undefined);
    assert.equal(profileForIdentifiers(ids('127.0.0.1'), directory()), undefined);
    assert.equal(profileForIdentifiers(ids('127.0.0.1'), directory({ classic: '90 days' })), undefined);
  });

  it('a configured profile wins', () => {
    assert.equal(profileForIdentifiers(ids('127.0.0.1'), directory(LE_PROFILES), 'classic'), 'classic');
  });
});

describe('challenges for IP addresses', () => {
  it('assertIpSolvable refuses an IP address when only dns-01 is configured, with a typed error', () => {
    assert.throws(() => assertIpSolvable(ids('127.0.0.1'), ['dns-01']), (e: unknown) => e instanceof IpChallengeError && e.code === 'ERR_IP_CHALLENGE' && e.identifier === '127.0.0.1');
    assertIpSolvable(ids('127.0.0.1'), ['dns-01', 'http-01']);
    assertIpSolvable(ids('127.0.0.1'), ['tls-alpn-01']);
    assertIpSolvable(ids('www.example.test'), ['dns-01']);
  });

  it('the ACME issuer refuses before contacting the CA (its directory is a closed port)', async () => {
    const dns = new RecordingSolver();
    const issuer = new AcmeIssuer({ directoryUrl: 'https://127.0.0.1:1/dir', agreeToTerms: true, storage: new MemoryStorage(), solvers: { 'dns-01': dns } });
    try {
      const identifiers = ids('::1');
      const { csr } = await createKeyAndCsr(identifiers);
      await assert.rejects(issuer.issue({ identifiers, csr }), (e: unknown) => e instanceof IpChallengeError && e.identifier === '::1');
      assert.equal(dns.presented.length, 0);
    } finally {
      await issuer.close();
    }
  });

  /** A CA that (against RFC 8738) offers dns-01 for an IP address, and answers nothing after the challenge choice. */
  function fakeCa(offered: string[]): { conn: AcmeConnection; posts: string[] } {
    const posts: string[] = [];
    const conn = {
      directoryUrl: 'https://ca.test/dir',
      async keyAuthorization(token: string) {
        return `${token}.thumbprint`;
      },
      async post(url: string) {
        posts.push(url);
        if (url === 'https://ca.test/order') {
          return { status: 201, headers: { location: 'https://ca.test/order/1' }, data: { status: 'pending', authorizations: ['https://ca.test/authz/1'], finalize: 'https://ca.test/finalize/1' } };
        }
        if (url === 'https://ca.test/authz/1') {
          return { status: 200, headers: {}, data: { status: 'pending', identifier: { type: 'ip', value: '127.0.0.1' }, challenges: offered.map((type) => ({ type, url: `https://ca.test/chall/${type}`, token: `tok-${type}`, status: 'pending' })) } };
        }
        throw new Error(`stop at ${url}`);
      },
    };
    return { conn: conn as unknown as AcmeConnection, posts };
  }

  const context = (conn: AcmeConnection, solvers: OrderContext['solvers']): OrderContext => ({
    conn,
    directory: directory(),
    issuerKey: 'ca.test',
    solvers,
    challengePreference: ['dns-01', 'http-01', 'tls-alpn-01'],
    preferredChain: undefined,
    clock: new FakeClock(),
    logger: silentLogger(),
    orderTimeoutMs: 60_000,
    pollIntervalMs: 10,
    maxPollIntervalMs: 10,
  });

  it('never presents dns-01 for an IP address even when preferred and offered: http-01 is used', async () => {
    const dns = new RecordingSolver();
    const presented: ChallengeContext[] = [];
    const http: Solver = {
      async present(challenge) {
        presented.push(challenge);
        throw new Error('stop after the choice');
      },
      async cleanUp() {},
    };
    const { conn } = fakeCa(['dns-01', 'http-01']);
    const identifiers = ids('127.0.0.1');
    const { csr } = await createKeyAndCsr(identifiers);
    await assert.rejects(runOrder(context(conn, { 'dns-01': dns, 'http-01': http }), { identifiers, csr }), /stop after the choice/);
    assert.deepEqual(presented.map((c) => `${c.type} ${c.identifier.type}:${c.identifier.value}`), ['http-01 ip:127.0.0.1']);
    assert.equal(dns.presented.length, 0);
  });

  it('with only dns-01 offered for an IP address, the order fails with NoSolverError and nothing is presented', async () => {
    const dns = new RecordingSolver();
    const { conn, posts } = fakeCa(['dns-01']);
    const identifiers = ids('127.0.0.1');
    const { csr } = await createKeyAndCsr(identifiers);
    await assert.rejects(runOrder(context(conn, { 'dns-01': dns, 'http-01': new RecordingSolver() }), { identifiers, csr }), NoSolverError);
    assert.equal(dns.presented.length, 0);
    assert.ok(!posts.some((url) => url.includes('/chall/')), 'no challenge was answered');
  });
});
