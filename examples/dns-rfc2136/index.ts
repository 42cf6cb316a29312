/**
 * A wildcard certificate for an internal zone through RFC 2136 (BIND and
 * friends), with no HTTP port open to the CA. See README.md for the BIND side.
 *
 *   DOMAIN=internal.example.com DNS_SERVER=10.0.0.53:53 TSIG_KEY_FILE=/etc/certkeeper/acme.key \
 *   ACME_EMAIL=ops@example.com npx tsx examples/dns-rfc2136/index.ts
 *
 * Writes cert.pem (leaf + chain) and key.pem into OUT_DIR (default ./out).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import {
  AcmeIssuer,
  createKeyAndCsr,
  Dns01Solver,
  FileStorage,
  parseIdentifier,
  REDACT_PATHS,
  Rfc2136Provider,
  type Logger,
} from 'certkeeper';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name} (see examples/dns-rfc2136/README.md)`);
  return value;
}

const domain = required('DOMAIN');
const outDir = process.env.OUT_DIR ?? 'out';
const logger = pino({ level: process.env.LOG_LEVEL ?? 'info', redact: REDACT_PATHS }) as unknown as Logger;

const provider = new Rfc2136Provider({
  server: required('DNS_SERVER'),
  keyFile: required('TSIG_KEY_FILE'),
  // Optional: skip the SOA lookup when the zone is known.
  ...(process.env.DNS_ZONE ? { zone: process.env.DNS_ZONE } : {}),
  logger,
});

// Where to check that the TXT value is visible before asking the CA to look.
// Default: the zone's authoritative servers, found through the system resolvers.
const checkServers = process.env.DNS_CHECK_SERVERS?.split(',').filter(Boolean);
const solver = new Dns01Solver({
  provider,
  propagation: {
    ...(checkServers ? { authoritativeServers: checkServers } : {}),
    timeoutMs: Number(process.env.DNS_PROPAGATION_TIMEOUT_MS ?? 120_000),
    intervalMs: Number(process.env.DNS_PROPAGATION_INTERVAL_MS ?? 2_000),
  },
  logger,
});

const storage = new FileStorage({ root: process.env.STORAGE_DIR ?? join(outDir, 'storage'), logger });
const issuer = new AcmeIssuer({
  ...(process.env.ACME_DIRECTORY_URL ? { directoryUrl: process.env.ACME_DIRECTORY_URL } : { ca: 'letsencrypt-staging' as const }),
  ...(process.env.ACME_CA_CERT ? { caCertificates: await readFile(process.env.ACME_CA_CERT, 'utf8') } : {}),
  ...(process.env.ACME_EMAIL ? { email: process.env.ACME_EMAIL } : {}),
  agreeToTerms: process.env.ACME_AGREE_TO_TERMS !== 'false',
  storage,
  solvers: { 'dns-01': solver },
  challengePreference: ['dns-01'],
  logger,
});

try {
  // The apex and the wildcard: two TXT values at _acme-challenge.<domain> at once.
  const identifiers = [domain, `*.${domain}`].map((name) => parseIdentifier(name));
  const { csr, keyPem } = await createKeyAndCsr(identifiers);
  const { chainPem } = await issuer.issue({ identifiers, csr });
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'cert.pem'), chainPem);
  await writeFile(join(outDir, 'key.pem'), keyPem, { mode: 0o600 });
  logger.info({ names: identifiers.map((i) => i.value), outDir }, 'certificate written');
} finally {
  await issuer.close();
  await storage.close();
}
