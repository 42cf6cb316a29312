/**
 * The promise of the reload path: certificate and key files replaced by
 * write-then-rename while clients keep opening TLS connections, and not one
 * handshake fails or sees anything but a complete, known certificate.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import tls from 'node:tls';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { silentLogger } from '../helpers/logging.js';
import { createTestCa, createTestLeaf, type TestCa, type TestLeaf } from '../helpers/tls-certs.js';
import { makeTempDir, startTlsServer, waitUntil, writeAtomic, type TestServer } from './helpers.js';

const NAME = 'swap.reload.test';
const REPLACEMENTS = 20;
const MIN_HANDSHAKES = 2_000;
const CLIENTS = 4;

let ca: TestCa;
let leaves: TestLeaf[];
let temp: { dir: string; cleanup: () => Promise<void> };
let keeper: CertKeeper;
let server: TestServer;

before(async () => {
  ca = await createTestCa('swap CA');
  leaves = await Promise.all(Array.from({ length: REPLACEMENTS + 1 }, () => createTestLeaf(ca, { names: [NAME] })));
  temp = await makeTempDir();
  keeper = new CertKeeper({ storage: new MemoryStorage(), logger: silentLogger() });
  server = await startTlsServer(keeper.tlsOptions());
});

after(async () => {
  await server?.close();
  await keeper?.close();
  await temp?.cleanup();
});

/** One verified handshake (CA and name), new connection, no resumption; resolves the leaf's serial. Lean: this loop is the test's cost. */
function servedSerial(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: server.port, servername: NAME, ca: ca.certPem, rejectUnauthorized: true }, () => {
      const serial = socket.getPeerX509Certificate()?.serialNumber.toUpperCase() ?? '';
      socket.destroy();
      resolve(serial);
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('handshake timed out')));
    socket.on('error', reject);
  });
}

it(`${REPLACEMENTS} write-then-rename replacements under ${MIN_HANDSHAKES}+ handshakes: none fails, each sees a known certificate`, async () => {
  const cert = join(temp.dir, 'tls.crt');
  const key = join(temp.dir, 'tls.key');
  const first = leaves[0] as TestLeaf;
  await writeAtomic(cert, first.chainPem);
  await writeAtomic(key, first.keyPem);
  const handle = await keeper.loadCertificateFiles({ cert, key, debounceMs: 20 });

  const known = new Set(leaves.map((l) => l.serialNumber));
  const seen = new Map<string, number>();
  const failures: string[] = [];
  let handshakes = 0;
  let stop = false;
  const client = async (): Promise<void> => {
    while (!stop) {
      try {
        // Verified against the CA and the name: a certificate served with the wrong key fails here.
        const serial = await servedSerial();
        seen.set(serial, (seen.get(serial) ?? 0) + 1);
        if (!known.has(serial)) failures.push(`unknown serial ${serial}`);
      } catch (error) {
        failures.push(String(error));
      }
      handshakes++;
    }
  };
  const clients = Array.from({ length: CLIENTS }, () => client());

  try {
    const perReplacement = Math.ceil(MIN_HANDSHAKES / REPLACEMENTS);
    for (let i = 1; i <= REPLACEMENTS; i++) {
      const since = handshakes;
      await waitUntil(() => handshakes - since >= perReplacement, 20_000, 'handshakes between replacements');
      const leaf = leaves[i] as TestLeaf;
      await writeAtomic(cert, leaf.chainPem);
      await writeAtomic(key, leaf.keyPem);
      await waitUntil(() => handle.material.serialNumber === leaf.serialNumber && (seen.get(leaf.serialNumber) ?? 0) > 0, 20_000, `certificate ${i} served`);
    }
    await waitUntil(() => handshakes >= MIN_HANDSHAKES, 20_000, 'the handshake total');
  } finally {
    stop = true;
    await Promise.all(clients);
  }

  assert.deepEqual(failures, []);
  assert.ok(handshakes >= MIN_HANDSHAKES, `${handshakes} handshakes`);
  for (const leaf of leaves) assert.ok((seen.get(leaf.serialNumber) ?? 0) > 0, `certificate ${leaf.serialNumber} was served`);
  // Each old certificate was dropped from the cache when its successor came in.
  assert.equal(keeper.cacheStats().certificates, 1);
});
