/**
 * What the framework examples share: settings from environment variables (so
 * they run against Let's Encrypt in production and against Pebble in the
 * tests) and small server helpers.
 */
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { FileStorage, type CertKeeper, type CertKeeperOptions } from 'certkeeper';

export function keeperOptionsFromEnv(): { names: string[]; options: CertKeeperOptions } {
  const env = process.env;
  const names = (env.CERTKEEPER_NAMES ?? '').split(',').map((n) => n.trim()).filter((n) => n.length > 0);
  if (names.length === 0) throw new Error('set CERTKEEPER_NAMES (comma-separated names pointing at this machine)');
  if (env.CERTKEEPER_AGREE_TO_TERMS !== '1') throw new Error("set CERTKEEPER_AGREE_TO_TERMS=1 to accept the CA's terms of service");
  const options: CertKeeperOptions = {
    // Staging unless told otherwise: its certificates are not trusted, but its rate limits forgive experiments.
    ca: env.CERTKEEPER_CA ?? 'letsencrypt-staging',
    agreeToTerms: true,
    ...(env.CERTKEEPER_CA_ROOT ? { caCertificates: readFileSync(env.CERTKEEPER_CA_ROOT, 'utf8') } : {}),
    ...(env.CERTKEEPER_EMAIL ? { email: env.CERTKEEPER_EMAIL } : {}),
    ...(env.CERTKEEPER_STORAGE ? { storage: new FileStorage({ root: env.CERTKEEPER_STORAGE }) } : {}),
  };
  return { names, options };
}

export function listen(server: http.Server, port: number, host: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host }, () => resolve((server.address() as AddressInfo).port));
  });
}

export function close(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

/**
 * Listens on HTTP_PORT (challenges) and HTTPS_PORT, obtains the names, prints
 * the ready line, and closes everything on SIGTERM/SIGINT.
 */
export async function serveExample(keeper: CertKeeper, names: readonly string[], httpServer: http.Server, httpsServer: http.Server, host: string | undefined): Promise<void> {
  await listen(httpServer, Number(process.env.HTTP_PORT ?? 80), host);
  const httpsPort = await listen(httpsServer, Number(process.env.HTTPS_PORT ?? 443), host);
  await keeper.manageSync(names);
  console.log(`listening https://${names[0]}:${httpsPort}/`);

  const shutdown = async (): Promise<void> => {
    // A stuck connection must not keep the process alive for ever.
    setTimeout(() => process.exit(1), 15_000).unref();
    await Promise.all([close(httpServer), close(httpsServer)]);
    await keeper.close();
  };
  process.once('SIGTERM', () => void shutdown());
  process.once('SIGINT', () => void shutdown());
}
