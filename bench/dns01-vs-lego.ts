/**
 * One DNS-01 wildcard issuance (`example.test` + `*.example.test`) through
 * RFC 2136 against BIND9 and Pebble: certkeeper vs `lego --dns rfc2136`, in the
 * same run, alternating, each with a fresh account and its propagation waits
 * as short as it allows.
 *
 *   npx tsx bench/dns01-vs-lego.ts [runs=3]
 *
 * Needs: pebble, bind9, lego (`apt-get install -y pebble bind9 bind9-dnsutils lego`).
 *
 * certkeeper: propagation checked on the BIND server every 100 ms, order polling from 50 ms.
 * lego 4.9: RFC2136_POLLING_INTERVAL=1 s and RFC2136_SEQUENCE_INTERVAL=1 s (its minimum
 * useful values: whole seconds), --dns.disable-cp (BIND is not on port 53).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createKeyAndCsr } from '../src/acme/csr.js';
import { Rfc2136Provider } from '../src/dns/rfc2136.js';
import { AcmeIssuer } from '../src/issuers/acme.js';
import { parseIdentifier } from '../src/names.js';
import { Dns01Solver } from '../src/challenges/dns01.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { startBind } from '../test/helpers/bind.js';
import { startPebble } from '../test/helpers/pebble.js';
import { findBinary } from '../test/helpers/system.js';

const execFileAsync = promisify(execFile);
const runs = Number(process.argv[2] ?? 3);
const NAMES = ['example.test', '*.example.test'];

for (const bin of ['pebble', 'named', 'lego']) {
  if (!findBinary(bin)) {
    console.error(`${bin} is not installed: apt-get install -y pebble bind9 bind9-dnsutils lego`);
    process.exit(2);
  }
}

const secret = randomBytes(32).toString('base64');
const bind = await startBind({ zones: [{ name: 'example.test' }], tsig: { name: 'bench', algorithm: 'hmac-sha256', secret } });
const pebble = await startPebble({ dnsServer: bind.server, startChalltestsrv: false });
const work = await mkdtemp(join(tmpdir(), 'certkeeper-bench-'));
const caFile = join(work, 'pebble-ca.pem');
await writeFile(caFile, pebble.pebbleCaPem);

async function certkeeperOnce(): Promise<number> {
  const started = performance.now();
  const issuer = new AcmeIssuer({
    directoryUrl: pebble.directoryUrl,
    caCertificates: pebble.pebbleCaPem,
    agreeToTerms: true,
    email: 'bench@example.test',
    storage: new MemoryStorage(),
    solvers: {
      'dns-01': new Dns01Solver({
        provider: new Rfc2136Provider({ server: bind.server, keyName: 'bench', secret }),
        followCname: false,
        propagation: { authoritativeServers: [bind.server], intervalMs: 100, timeoutMs: 30_000 },
      }),
    },
    challengePreference: ['dns-01'],
    pollIntervalMs: 50,
  });
  try {
    const identifiers = NAMES.map((n) => parseIdentifier(n));
    const { csr } = await createKeyAndCsr(identifiers);
    await issuer.issue({ identifiers, csr });
  } finally {
    await issuer.close();
  }
  return performance.now() - started;
}

async function legoOnce(run: number): Promise<number> {
  const path = join(work, `lego-${run}`);
  const started = performance.now();
  await execFileAsync(
    'lego',
    [
      '--server', pebble.directoryUrl,
      '--email', 'bench@example.test',
      '--accept-tos',
      '--path', path,
      '--key-type', 'ec256',
      '--dns', 'rfc2136',
      '--dns.resolvers', bind.server,
      '--dns.disable-cp',
      ...NAMES.flatMap((n) => ['-d', n]),
      'run',
    ],
    {
      cwd: work,
      env: {
        ...process.env,
        LEGO_CA_CERTIFICATES: caFile,
        RFC2136_NAMESERVER: bind.server,
        RFC2136_TSIG_KEY: 'bench.',
        RFC2136_TSIG_SECRET: secret,
        RFC2136_TSIG_ALGORITHM: 'hmac-sha256.',
        RFC2136_POLLING_INTERVAL: '1',
        RFC2136_SEQUENCE_INTERVAL: '1',
        RFC2136_PROPAGATION_TIMEOUT: '30',
        RFC2136_TTL: '60',
      },
    },
  );
  return performance.now() - started;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

const ours: number[] = [];
const theirs: number[] = [];
try {
  const issuedBefore = pebble.issuedCount();
  for (let run = 0; run < runs; run++) {
    ours.push(await certkeeperOnce());
    theirs.push(await legoOnce(run));
    console.log(`run ${run + 1}: certkeeper ${(ours.at(-1)! / 1000).toFixed(2)} s, lego ${(theirs.at(-1)! / 1000).toFixed(2)} s`);
  }
  const issued = pebble.issuedCount() - issuedBefore;
  const leftover = await bind.txt('_acme-challenge.example.test');
  console.log(`\none DNS-01 wildcard issuance (${NAMES.join(' + ')}) via RFC 2136, BIND9 ${bind.server}, Pebble; ${runs} run(s) each, median:`);
  console.log(`  certkeeper  ${(median(ours) / 1000).toFixed(2)} s`);
  console.log(`  lego 4.9.1  ${(median(theirs) / 1000).toFixed(2)} s`);
  console.log(`  ratio lego / certkeeper = ${(median(theirs) / median(ours)).toFixed(1)}x`);
  console.log(`  certificates issued by Pebble: ${issued} (expected ${2 * runs}); TXT values left: ${leftover.length}`);
} finally {
  await pebble.stop();
  await bind.stop();
  await rm(work, { recursive: true, force: true });
}
