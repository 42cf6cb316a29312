/**
 * `startTestCa`: an ACME front for a real Pebble that adds what Debian's
 * Pebble 2.4 lacks (profiles, per-profile lifetimes, renewalInfo with
 * `replaces`, Retry-After and faults, a CRL, request counts), for certkeeper's
 * own tests and for anyone's CI. Pebble still validates every challenge.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Lifecycle } from '../../lifecycle.js';
import { InvalidOptionError } from '../../errors.js';
import { AcmeFront, type FrontContext } from './acme-front.js';
import { Ledger, type CertificateRecord } from './ledger.js';
import { resolveTestCaOptions, type ResolvedTestCaOptions } from './options.js';
import { firstPem, loadIssuer, makeServerIdentity } from './pki.js';
import { OcspResponder } from './ocsp.js';
import { CrlPublisher } from './revocation.js';
import { CRL_PATH, OCSP_PATH, createRevocationServer } from './revocation-server.js';
import { Upstream } from './upstream.js';
import type { RenewalWindow, TestCa, TestCaCertificate, TestCaEndpoint, TestCaFault, TestCaOptions } from './types.js';
import { listen } from '../../listen.js';

const LOOPBACK = '127.0.0.1';
/** The directory names the test CA counts and faults by (RFC 8555 §7.1.1). */
const DIRECTORY_ENDPOINTS: readonly TestCaEndpoint[] = ['newNonce', 'newAccount', 'newOrder', 'revokeCert', 'keyChange'];

/** Starts the front on a free loopback port; Pebble must be running. Close it with close() or `await using`. */
export async function startTestCa(options: TestCaOptions): Promise<TestCa> {
  const resolved = resolveTestCaOptions(options);
  const upstream = new Upstream(resolved.pebble);
  const servers: (http.Server | https.Server)[] = [];
  try {
    const [intermediatePem, intermediateKeyPem, rootPem] = await Promise.all([
      upstream.management('/intermediates/0'),
      upstream.management('/intermediate-keys/0'),
      upstream.management('/roots/0'),
    ]);
    const issuer = await loadIssuer(intermediatePem, intermediateKeyPem);
    const identity = await makeServerIdentity(resolved.clock.now());
    const lifecycle = new Lifecycle('test CA', async () => {
      upstream.close();
      await Promise.all(servers.map(closeServer));
    });
    const ledger = new Ledger();
    const crl = new CrlPublisher(issuer, ledger, resolved.crlLifetimeMs);

    const ocsp = resolved.ocsp ? new OcspResponder(issuer, ledger, resolved.clock, resolved.crlLifetimeMs) : undefined;
    const crlServer = createRevocationServer({ ledger, crl, ocsp, clock: resolved.clock, lifecycle });
    servers.push(crlServer);
    const crlPort = await listenOnLoopback(crlServer);
    const crlUrl = `http://${LOOPBACK}:${crlPort}${CRL_PATH}`;
    const ocspUrl = ocsp ? `http://${LOOPBACK}:${crlPort}${OCSP_PATH}` : undefined;

    const context: FrontContext = { options: resolved, ledger, upstream, issuer, crlUrl, ocspUrl, newNoncePath: '/', logger: resolved.logger };
    const front = new AcmeFront(context);
    const acmeServer = https.createServer({ cert: identity.certPem, key: identity.keyPem }, (req, res) => {
      if (lifecycle.closed) {
        res.writeHead(503, { connection: 'close' }).end();
        return;
      }
      lifecycle.track(front.handle(req, res)).catch((error: unknown) => {
        resolved.logger.warn({ err: error }, 'test CA request failed');
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
    });
    servers.push(acmeServer);
    const port = await listenOnLoopback(acmeServer);
    const host = `${LOOPBACK}:${port}`;

    // Learn the directory's endpoints once, as the client will see them (Pebble names the Host it was asked by).
    const directory = JSON.parse(
      (await upstream.acme({ method: 'GET', path: upstream.directoryPath, host })).body.toString('utf8'),
    ) as Record<string, unknown>;
    ledger.learn(`https://${host}${upstream.directoryPath}`, 'directory');
    for (const name of DIRECTORY_ENDPOINTS) ledger.learn(directory[name], name);
    if (typeof directory['newNonce'] === 'string') context.newNoncePath = new URL(directory['newNonce']).pathname;

    return new RunningTestCa({
      lifecycle,
      ledger,
      options: resolved,
      directoryUrl: `https://${host}${upstream.directoryPath}`,
      caCertificate: identity.caPem,
      rootCertificate: firstPem(rootPem),
      intermediateCertificate: issuer.certificatePem,
      crlUrl,
      ocspUrl,
    });
  } catch (error) {
    upstream.close();
    await Promise.all(servers.map(closeServer));
    throw error;
  }
}

interface RunningParts {
  lifecycle: Lifecycle;
  ledger: Ledger;
  options: ResolvedTestCaOptions;
  directoryUrl: string;
  caCertificate: string;
  rootCertificate: string;
  intermediateCertificate: string;
  crlUrl: string;
  ocspUrl: string | undefined;
}

class RunningTestCa implements TestCa {
  readonly directoryUrl: string;
  readonly caCertificate: string;
  readonly rootCertificate: string;
  readonly intermediateCertificate: string;
  readonly crlUrl: string;
  readonly ocspUrl: string | undefined;
  readonly #lifecycle: Lifecycle;
  readonly #ledger: Ledger;
  readonly #options: ResolvedTestCaOptions;

  constructor(parts: RunningParts) {
    this.directoryUrl = parts.directoryUrl;
    this.caCertificate = parts.caCertificate;
    this.rootCertificate = parts.rootCertificate;
    this.intermediateCertificate = parts.intermediateCertificate;
    this.crlUrl = parts.crlUrl;
    this.ocspUrl = parts.ocspUrl;
    this.#lifecycle = parts.lifecycle;
    this.#ledger = parts.ledger;
    this.#options = parts.options;
  }

  certificates(): TestCaCertificate[] {
    return this.#ledger.certificates().map(publicView);
  }

  certificate(certificate: string): TestCaCertificate {
    return publicView(this.#ledger.get(certificate));
  }

  setRenewalWindow(certificate: string, window: RenewalWindow): void {
    if (typeof window !== 'object' || window === null) throw new InvalidOptionError('window', 'must be { start, end, explanationUrl? }');
    this.#ledger.setWindow(this.#ledger.get(certificate), window);
  }

  revocationDrill(options: { explanationUrl?: string } = {}): void {
    this.#ledger.drill(this.#options.clock.now(), options.explanationUrl);
  }

  revoke(certificate: string, reason = 0): void {
    const record = this.#ledger.get(certificate);
    if (!Number.isInteger(reason) || reason < 0 || reason > 10 || reason === 7) throw new InvalidOptionError('reason', 'must be an RFC 5280 reason code (0-10, not 7)');
    if (!record.revoked) this.#ledger.revoke(record, this.#options.clock.now(), reason);
  }

  tamperCrl(tampered: boolean): void {
    this.#ledger.crlTampered = tampered === true;
  }

  injectFault(fault: TestCaFault): void {
    this.#ledger.addFault(fault);
  }

  clearFaults(): void {
    this.#ledger.clearFaults();
  }

  setRetryAfter(endpoint: TestCaEndpoint, seconds: number | undefined): void {
    this.#ledger.setRetryAfter(endpoint, seconds);
  }

  requests(endpoint?: TestCaEndpoint): number {
    return this.#ledger.requests(endpoint);
  }

  close(): Promise<void> {
    return this.#lifecycle.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function publicView(record: CertificateRecord): TestCaCertificate {
  const { orderPath: _order, accountPath: _account, chainPem: _chain, replacedByOrder: _by, ...view } = record;
  return structuredClone(view);
}

async function listenOnLoopback(server: http.Server | https.Server): Promise<number> {
  await listen(server, { port: 0, host: LOOPBACK });
  return (server.address() as AddressInfo).port;
}

function closeServer(server: http.Server | https.Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
