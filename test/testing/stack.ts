/**
 * A real Pebble + challtestsrv, the test CA in front of it, an HTTP-01
 * responder on the port Pebble validates against, and acme-client clients
 * that trust the test CA's own CA: every challenge is validated for real.
 */
import http from 'node:http';
import https from 'node:https';
import acme from 'acme-client';
import { TrustHandle } from '../../src/acme/trust.js';
import { installAcmeClientHooks } from '../helpers/acme-client-trust.js';
import type { Solver } from '../../src/challenges/types.js';
import { startTestCa, type TestCa, type TestCaOptions } from '../../src/testing/index.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';

export interface Stack {
  pebble: PebbleHandle;
  ca: TestCa;
  /** An HTTP-01 solver for certkeeper's AcmeIssuer, answering through the same responder. */
  solver: Solver;
  /** A new acme-client client with a fresh account. */
  client(): Promise<acme.Client>;
  /** Orders, validates over HTTP-01 and downloads; `extra` goes into the newOrder payload (profile, replaces). */
  obtain(client: acme.Client, names: string[], extra?: Record<string, unknown>): Promise<{ order: acme.Order; chainPem: string; keyPem: string }>;
  /** GET over HTTPS trusting only the test CA's own CA. */
  get(url: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>;
  /** Plain-HTTP GET (the CRL), as bytes. */
  getBytes(url: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>;
  stop(): Promise<void>;
}

export interface RawAnswer {
  status: number;
  data: unknown;
  headers: Record<string, string | undefined>;
}

/**
 * acme-client's own signed request, for answers its API methods would turn into bare messages. Signed with
 * kid = the client's account, or with `jwk: true` by its key alone (a client whose key is a certificate's).
 */
export async function signedPost(client: acme.Client, resourceOrUrl: string, payload: unknown, { jwk = false } = {}): Promise<RawAnswer> {
  const http = (client as unknown as { http: { getResourceUrl(name: string): Promise<string>; signedRequest(url: string, payload: unknown, options: { kid: string | null }): Promise<RawAnswer> } }).http;
  const url = resourceOrUrl.startsWith('https:') ? resourceOrUrl : await http.getResourceUrl(resourceOrUrl);
  return http.signedRequest(url, payload, { kid: jwk ? null : client.getAccountUrl() });
}

export async function startStack(options: Omit<TestCaOptions, 'pebble'> = {}): Promise<Stack> {
  const pebble = await startPebble();
  const tokens = new Map<string, string>();
  const responder = http.createServer((req, res) => {
    const token = /^\/\.well-known\/acme-challenge\/([^/]+)$/.exec(req.url ?? '')?.[1];
    const answer = token ? tokens.get(token) : undefined;
    res.writeHead(answer ? 200 : 404).end(answer);
  });
  let ca: TestCa | undefined;
  let trust: TrustHandle | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      responder.once('error', reject);
      responder.listen(pebble.httpPort, '127.0.0.1', () => resolve());
    });
    ca = await startTestCa({ ...options, pebble: { directoryUrl: pebble.directoryUrl, managementUrl: pebble.managementUrl, caCertificate: pebble.pebbleCaPem } });
    // acme-client's shared axios instance picks its agent by origin (src/acme/trust.ts): register the test CA's.
    trust = new TrustHandle([ca.caCertificate]);
    trust.addOrigin(ca.directoryUrl);
    // certkeeper installs the hooks with its first AcmeConnection; this stack drives acme-client directly.
    installAcmeClientHooks();
  } catch (error) {
    await ca?.close();
    responder.close();
    await pebble.stop();
    throw error;
  }
  const testCa = ca;
  const trustHandle = trust;

  const client = async (): Promise<acme.Client> => {
    const c = new acme.Client({ directoryUrl: testCa.directoryUrl, accountKey: await acme.crypto.createPrivateEcdsaKey(), backoffMin: 50, backoffMax: 500 });
    await c.createAccount({ termsOfServiceAgreed: true });
    return c;
  };

  const obtain: Stack['obtain'] = async (c, names, extra = {}) => {
    const order = await c.createOrder({ identifiers: names.map((value) => ({ type: 'dns', value })), ...extra } as Parameters<acme.Client['createOrder']>[0]);
    for (const authz of await c.getAuthorizations(order)) {
      const challenge = authz.challenges.find((ch) => ch.type === 'http-01');
      if (!challenge) throw new Error('no http-01 challenge');
      tokens.set(challenge.token, await c.getChallengeKeyAuthorization(challenge));
      await c.completeChallenge(challenge);
      await c.waitForValidStatus(challenge);
    }
    const key = await acme.crypto.createPrivateEcdsaKey();
    const [, csr] = await acme.crypto.createCsr({ commonName: names[0] as string, altNames: names }, key);
    const finalized = await c.finalizeOrder(order, csr);
    return { order, chainPem: await c.getCertificate(finalized), keyPem: key.toString() };
  };

  const request = (url: string, secure: boolean): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const done = (res: http.IncomingMessage): void => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      };
      const req = secure ? https.get(url, { ca: testCa.caCertificate, agent: false }, done) : http.get(url, { agent: false }, done);
      req.on('error', reject);
    });

  return {
    pebble,
    ca: testCa,
    client,
    obtain,
    solver: {
      present: async (challenge) => {
        tokens.set(challenge.token, challenge.keyAuthorization);
      },
      cleanUp: async (challenge) => {
        tokens.delete(challenge.token);
      },
    },
    get: async (url) => {
      const { body, ...rest } = await request(url, true);
      return { ...rest, body: body.toString('utf8') };
    },
    getBytes: (url) => request(url, false),
    async stop() {
      await trustHandle.close();
      await testCa.close();
      await new Promise<void>((resolve) => responder.close(() => resolve()));
      await pebble.stop();
    },
  };
}
