/**
 * Faults 8 and 9: hostile SNI values through real TLS handshakes, with
 * on-demand TLS enabled. The internal issuer stands in for the CA (counted:
 * any order would show); storage writes are counted through a wrapper.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import tls from 'node:tls';
import { describe, test } from 'node:test';
import { InternalIssuer } from '../../src/issuers/internal.js';
import type { IssueRequest, Issuer, IssuedCertificate } from '../../src/issuers/types.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { FileStorage } from '../../src/storage/file.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/types.js';
import { silentLogger } from '../helpers/logging.js';
import { handshake } from '../helpers/tls-client.js';
import { closeServer, countingStorage, listen } from './helpers.js';
import { sendClientHello } from './raw-client-hello.js';

class CountingIssuer implements Issuer {
  readonly key: string;
  readonly #inner: InternalIssuer;
  calls: string[] = [];
  constructor(storage: Storage) {
    this.#inner = new InternalIssuer({ storage, logger: silentLogger() });
    this.key = this.#inner.key;
  }
  issue(request: IssueRequest): Promise<IssuedCertificate> {
    this.calls.push(request.identifiers.map((i) => i.value).join(','));
    return this.#inner.issue(request);
  }
}

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapAfterGc(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

/** One handshake that is expected to fail (no certificate); resolves either way. */
function attempt(port: number, servername: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      socket.destroy();
      resolve();
    });
    socket.on('error', () => resolve());
    socket.setTimeout(10_000, () => socket.destroy());
  });
}

async function files(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name));
  }
  return out;
}

describe('fault: SNI abuse', () => {
  test('10,000 handshakes with random names, on-demand denying: no order, no storage write, heap back near its level', { timeout: 120_000 }, async (t) => {
    const counted = countingStorage(new MemoryStorage());
    const issuer = new CountingIssuer(counted.storage);
    let decisions = 0;
    let denials = 0;
    const keeper = new CertKeeper({
      storage: counted.storage,
      issuers: [issuer],
      challenges: { http01: false, tlsAlpn01: { listener: false } },
      onDemand: { decide: () => (decisions++, false) },
      logger: silentLogger(),
    });
    keeper.on('on_demand_denied', () => denials++);
    const server = tls.createServer(keeper.tlsOptions());
    const port = await listen(server);
    const flood = async (count: number): Promise<void> => {
      let next = 0;
      await Promise.all(Array.from({ length: 32 }, async () => {
        while (next < count) {
          next++;
          await attempt(port, `${randomBytes(8).toString('hex')}.flood.example.test`);
        }
      }));
    };
    try {
      counted.stores.length = 0;
      await flood(500); // warm-up: lazily built structures exist before the baseline
      const baseline = heapAfterGc();
      const started = Date.now();
      await flood(10_000);
      const elapsed = Date.now() - started;
      const after = heapAfterGc();
      t.diagnostic(`10,000 handshakes in ${elapsed} ms; heap ${(baseline / 1048576).toFixed(1)} MiB before, ${(after / 1048576).toFixed(1)} MiB after`);
      assert.equal(decisions, 10_500, 'every new name was asked about once');
      assert.equal(denials, 10_500);
      assert.deepEqual(issuer.calls, [], 'no order');
      assert.equal(keeper.orderStats().peakInFlight, 0);
      assert.deepEqual(counted.stores, [], 'no storage write');
      assert.equal(keeper.list().length, 0, 'no denied name stays registered');
      // Denied names are remembered for a short while (bounded negative cache); everything else is released.
      assert.ok(after - baseline < 8 * 1048576, `heap grew by ${((after - baseline) / 1048576).toFixed(1)} MiB`);
    } finally {
      await closeServer(server);
      await keeper.close();
    }
  });

  test('bad SNI values are normalised or rejected; nothing is written outside the storage root', { timeout: 60_000 }, async () => {
    const parent = await mkdtemp(join(tmpdir(), 'certkeeper-sni-'));
    const root = join(parent, 'storage');
    await mkdir(root);
    const storage = new FileStorage({ root });
    const issuer = new CountingIssuer(storage);
    const decided: string[] = [];
    const keeper = new CertKeeper({
      storage,
      issuers: [issuer],
      challenges: { http01: false, tlsAlpn01: { listener: false } },
      // Allow everything: the test is whether a hostile value can get that far.
      onDemand: { decide: (name) => (decided.push(name), true) },
      logger: silentLogger(),
    });
    const options = keeper.tlsOptions();
    const received: string[] = [];
    const server = tls.createServer({
      ...options,
      SNICallback: (name, cb) => {
        received.push(name);
        options.SNICallback!(name, cb);
      },
    });
    const port = await listen(server);
    try {
      const before = await readdir(parent);
      const hostile = ['a/../../foo', 'b\\..\\foo', '*', '..', './.', '%2e%2e%2ffoo', 'bücher.example.test', 'xn--bcher-kva.example.test'];
      for (const name of hostile) await attempt(port, name);
      const upper = await handshake(port, 'UPPER.Example.TEST', []);
      assert.equal(upper.subjectAltName, 'DNS:upper.example.test');
      const dotted = await handshake(port, 'dot.example.test.', []);
      assert.equal(dotted.subjectAltName, 'DNS:dot.example.test');
      // Values Node's client will not send as they are: a NUL inside, and 300 bytes.
      const long = Array.from({ length: 5 }, () => 'a'.repeat(59)).join('.') + '.test';
      assert.equal(long.length, 304);
      for (const raw of [Buffer.from('nul\u0000.example.test/../../x', 'latin1'), Buffer.from(long), Buffer.from('../../etc/passwd')]) {
        const answer = await sendClientHello(port, raw);
        assert.notEqual(answer, 'handshake', `no certificate for ${JSON.stringify(raw.toString('latin1').slice(0, 40))}`);
      }

      assert.ok(received.includes('a/../../foo') && received.includes('*'), 'the hostile values did reach the server');
      for (const name of decided) {
        assert.match(name, /^[a-z0-9-]+(\.[a-z0-9-]+)+$/, `only valid normalised names reach decide(): ${JSON.stringify(name)}`);
      }
      assert.deepEqual([...new Set(decided)].sort(), ['dot.example.test', 'upper.example.test', 'xn--bcher-kva.example.test'].sort());
      assert.deepEqual(issuer.calls.sort(), ['dot.example.test', 'upper.example.test', 'xn--bcher-kva.example.test'].sort());

      assert.deepEqual(await readdir(parent), before, 'nothing new beside the storage root');
      for (const file of await files(root)) {
        const rel = relative(root, file);
        assert.ok(!rel.startsWith('..') && !rel.split(sep).includes('..'), `inside the root: ${rel}`);
      }
      const stored = (await files(join(root, 'certificates'))).map((f) => relative(join(root, 'certificates'), f).split(sep)[1]);
      assert.deepEqual([...new Set(stored)].sort(), ['dot.example.test', 'upper.example.test', 'xn--bcher-kva.example.test'].sort());
    } finally {
      await closeServer(server);
      await keeper.close();
      await rm(parent, { recursive: true, force: true });
    }
  });
});
