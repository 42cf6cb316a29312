/**
 * An HTTPS server serving certificates that another tool issues and renews
 * (certbot here; a Kubernetes secret or Vault agent works the same way).
 * certkeeper serves them through its SNI cache and reloads each one when its
 * files change: no restart, no half-written file served, no failed handshake.
 * See README.md.
 *
 *   LIVE_DIR=/etc/letsencrypt/live PORT=8443 node --import tsx examples/file-reload/index.ts
 */
import { existsSync, readdirSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CertKeeper } from 'certkeeper';

const liveDir = process.env.LIVE_DIR ?? '/etc/letsencrypt/live';
const port = Number(process.env.PORT ?? 8443);
const clientCaFile = process.env.CLIENT_CA_FILE;

const keeper = new CertKeeper({ logLevel: 'info' });

// Nobody renews these here: say so loudly when a renewal elsewhere did not happen.
keeper.on('cert_expiring', ({ names, notAfter }) => console.warn(`${names.join(', ')} expires ${notAfter.toISOString()} and has not been replaced`));
keeper.on('cert_reload_failed', ({ certFile, reason, error }) => console.error(`kept the previous certificate: ${certFile ?? ''} ${reason ?? ''}: ${error.message}`));
keeper.on('cert_names_changed', ({ added, removed }) => console.info(`names changed: +[${added.join(', ')}] -[${removed.join(', ')}]`));

// certbot's layout: live/<name>/fullchain.pem and privkey.pem, symlinks into archive/ that renewals re-point.
const lineages = readdirSync(liveDir, { withFileTypes: true }).filter(
  (entry) => entry.isDirectory() && existsSync(join(liveDir, entry.name, 'fullchain.pem')),
);
if (lineages.length === 0) throw new Error(`no certbot lineage (live/<name>/fullchain.pem) under ${liveDir}`);
for (const lineage of lineages) {
  const dir = join(liveDir, lineage.name);
  const handle = await keeper.loadCertificateFiles({ cert: join(dir, 'fullchain.pem'), key: join(dir, 'privkey.pem') });
  console.info(`serving ${handle.names.join(', ')} until ${handle.material.notAfter.toISOString()}`);
}

// Optional mTLS: the trusted client-CA bundle is reloaded on change too.
const tlsOptions = clientCaFile ? { clientCA: { file: clientCaFile }, requestCert: true, rejectUnauthorized: true } : {};
const server = https.createServer(keeper.tlsOptions(tlsOptions), (req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello over ${req.headers.host ?? 'HTTPS'}\n`);
});
// Clients that send no SNI use the server's own context: keep it in step with reloads.
keeper.attachServer(server, tlsOptions);
server.listen(port, () => console.info(`listening on https://localhost:${(server.address() as AddressInfo).port}`));

const shutdown = (): void => {
  server.close();
  server.closeAllConnections();
  void keeper.close();
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
