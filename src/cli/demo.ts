/**
 * `certkeeper demo`: an HTTPS server on https://localhost:8443 whose
 * certificate (for `localhost`, `127.0.0.1` and `::1`) comes from the internal CA and
 * is a managed certificate like any other, so the ordinary scheduler renews it
 * (every 16 hours with the 24-hour default lifetime). No network, no root.
 */
import type http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Clock } from '../clock.js';
import { InvalidOptionError } from '../errors.js';
import { DEFAULT_INTERNAL_CA_NAME } from '../issuers/internal.js';
import type { Logger } from '../logger.js';
import { listen } from '../listen.js';
import { CertKeeper } from '../manager/keeper.js';
import { FileStorage } from '../storage/file.js';
import { internalCaKeys } from '../storage/layout.js';
import { shellQuote } from './shell.js';

// Every address the demo listens on (127.0.0.1 and ::1) plus the name, so a client verifies on each.
export const DEMO_NAMES: readonly string[] = ['localhost', '127.0.0.1', '::1'];

export interface DemoOptions {
  /** 0 picks a free port. */
  port: number;
  storageRoot: string;
  logger: Logger;
  clock?: Clock | undefined;
  /** Leaf lifetime of the internal CA (default 24 h). */
  leafLifetimeMs?: number | undefined;
  /** Called when the scheduler renews the certificate. */
  onRenewed?: ((notAfter: Date) => void) | undefined;
}

export interface DemoServer {
  readonly url: string;
  readonly port: number;
  /** The internal CA's root certificate file, to pass to `curl --cacert`. */
  readonly rootCertificatePath: string;
  readonly curlCommand: string;
  readonly keeper: CertKeeper;
  notAfter(): Date | undefined;
  nextRenewalAt(): Date | undefined;
  /** Stops the servers, then the keeper (timers, storage locks). Idempotent. */
  close(): Promise<void>;
}

export async function startDemo(options: DemoOptions): Promise<DemoServer> {
  const storage = new FileStorage({ root: options.storageRoot, logger: options.logger });
  const keeper = new CertKeeper({
    storage,
    issuers: [{ type: 'internal', ...(options.leafLifetimeMs !== undefined ? { leafLifetimeMs: options.leafLifetimeMs } : {}) }],
    // The internal CA validates nothing, so no challenge listener is ever needed.
    challenges: { http01: { listener: false }, tlsAlpn01: false },
    // curl https://127.0.0.1:8443 sends no SNI: serve the same certificate.
    defaultServerName: 'localhost',
    logger: options.logger,
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const servers: https.Server[] = [];
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await Promise.all(servers.map((server) => new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })));
      await keeper.close();
      await storage.close();
    })();
    return closing;
  };

  try {
    if (options.onRenewed) {
      const onRenewed = options.onRenewed;
      keeper.on('cert_renewed', (event) => onRenewed(event.notAfter));
    }
    await keeper.manageSync([DEMO_NAMES]);
    const handler: http.RequestListener = (_req, res) => {
      const status = keeper.status('localhost');
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(
        'Hello from certkeeper!\n' +
          `This connection uses a certificate for ${DEMO_NAMES.join(', ')} from certkeeper's internal CA,\n` +
          `valid until ${status.notAfter?.toISOString() ?? '?'} and renewed automatically at ${status.nextRenewalAt?.toISOString() ?? '?'}.\n`,
      );
    };
    // node:https speaks HTTP/1.1 only: say so in ALPN, or a client offering h2 first (curl) gets h2 and an empty reply.
    const tlsOptions = keeper.tlsOptions();
    const v4 = https.createServer(tlsOptions, handler);
    servers.push(v4);
    const port = await listenOn(v4, options.port, '127.0.0.1').catch((error: unknown) => {
      const hint = (error as NodeJS.ErrnoException).code === 'EADDRINUSE' ? 'it is in use; choose another port' : (error as Error).message;
      throw new InvalidOptionError('--port', `cannot listen on 127.0.0.1:${options.port}: ${hint}`, { cause: error });
    });
    // `localhost` may resolve to ::1 first; answer there too when this machine has IPv6 loopback.
    const v6 = https.createServer(tlsOptions, handler);
    await listenOn(v6, port, '::1').then(
      () => servers.push(v6),
      (error: unknown) => options.logger.debug({ err: error }, 'demo not listening on ::1'),
    );

    const rootCertificatePath = join(storage.root, ...internalCaKeys(DEFAULT_INTERNAL_CA_NAME).rootCert.split('/'));
    const url = `https://localhost:${port}/`;
    return {
      url,
      port,
      rootCertificatePath,
      curlCommand: `curl --cacert ${shellQuote(rootCertificatePath)} ${url}`,
      keeper,
      notAfter: () => keeper.status('localhost').notAfter,
      nextRenewalAt: () => keeper.status('localhost').nextRenewalAt,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

async function listenOn(server: https.Server, port: number, host: string): Promise<number> {
  await listen(server, { port, host, ipv6Only: host === '::1' });
  return (server.address() as AddressInfo).port;
}

export { shellQuote };
