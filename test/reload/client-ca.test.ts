import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { parseClientCaBundle } from '../../src/tls/client-ca.js';
import { silentLogger } from '../helpers/logging.js';
import { createTestCa, createTestLeaf, type TestCa, type TestLeaf } from '../helpers/tls-certs.js';
import { makeTempDir, mtlsAttempt, nextEvent, startTlsServer, writeAtomic, type TestServer } from './helpers.js';

const NAME = 'mtls.reload.test';

let serverCa: TestCa;
let ca1: TestCa;
let ca2: TestCa;
let client1: TestLeaf;
let client2: TestLeaf;
let temp: { dir: string; cleanup: () => Promise<void> };
let keeper: CertKeeper;
let server: TestServer;
let bundle: string;

before(async () => {
  [serverCa, ca1, ca2, temp] = await Promise.all([createTestCa('server CA'), createTestCa('client CA 1'), createTestCa('client CA 2'), makeTempDir()]);
  [client1, client2] = await Promise.all([
    createTestLeaf(ca1, { names: ['client1.test'], usage: 'client' }),
    createTestLeaf(ca2, { names: ['client2.test'], usage: 'client' }),
  ]);
  const serverLeaf = await createTestLeaf(serverCa, { names: [NAME] });
  bundle = join(temp.dir, 'client-ca.pem');
  await writeAtomic(bundle, ca1.certPem, 0o644);

  keeper = new CertKeeper({ storage: new MemoryStorage(), logger: silentLogger() });
  keeper.loadCertificatePem({ cert: serverLeaf.chainPem, key: serverLeaf.keyPem });
  const options = { clientCA: { file: bundle, debounceMs: 20, maxWaitMs: 200, recheckIntervalMs: 0 }, requestCert: true, rejectUnauthorized: true };
  server = await startTlsServer(keeper.tlsOptions(options));
  // Clients without SNI use the server's own context: keep it in step too.
  keeper.attachServer(server.server, options);
});

after(async () => {
  await server?.close();
  await keeper?.close();
  await temp?.cleanup();
});

/** A client with SNI (served from the cache) and one without (the server's own context). */
async function attempt(client: TestLeaf, sni: boolean): Promise<'accepted' | 'rejected'> {
  const result = await mtlsAttempt(server.port, {
    ...(sni ? { servername: NAME } : {}),
    ca: serverCa.certPem,
    cert: client.chainPem,
    key: client.keyPem,
    // Without SNI the server presents the default certificate, whose name is not the IP we dial.
    checkServerIdentity: () => undefined,
  });
  return result.outcome;
}

async function assertClients(expected: { c1: 'accepted' | 'rejected'; c2: 'accepted' | 'rejected' }): Promise<void> {
  for (const sni of [true, false]) {
    assert.equal(await attempt(client1, sni), expected.c1, `client of CA1, ${sni ? 'with' : 'without'} SNI`);
    assert.equal(await attempt(client2, sni), expected.c2, `client of CA2, ${sni ? 'with' : 'without'} SNI`);
  }
}

async function replaceBundle(content: string): Promise<void> {
  const loaded = nextEvent(keeper, 'client_ca_loaded');
  await writeAtomic(bundle, content, 0o644);
  const event = await loaded;
  assert.equal(event.file, bundle);
}

describe('client-CA bundle reload (mTLS)', () => {
  it('rotates CA1 -> CA1+CA2 -> CA2 without a restart; a corrupt or non-CA bundle keeps the one in force', async () => {
    await assertClients({ c1: 'accepted', c2: 'rejected' });

    await replaceBundle(`${ca1.certPem}\n${ca2.certPem}\n`);
    await assertClients({ c1: 'accepted', c2: 'accepted' });

    await replaceBundle(ca2.certPem);
    await assertClients({ c1: 'rejected', c2: 'accepted' });

    let failed = nextEvent(keeper, 'cert_reload_failed', (e) => e.caFile === bundle);
    await writeAtomic(bundle, `${ca1.certPem}\n${ca2.certPem.slice(0, 120)}`, 0o644);
    let event = await failed;
    assert.equal(event.reason, 'certificate_malformed');
    assert.equal((event.error as { code?: string }).code, 'ERR_CERTIFICATE_INVALID');
    await assertClients({ c1: 'rejected', c2: 'accepted' });

    failed = nextEvent(keeper, 'cert_reload_failed', (e) => e.caFile === bundle);
    await writeAtomic(bundle, `${ca1.certPem}\n${client1.leafPem}`, 0o644);
    event = await failed;
    assert.equal(event.reason, 'not_ca');
    await assertClients({ c1: 'rejected', c2: 'accepted' });

    // And a good bundle after the failures is picked up.
    await replaceBundle(ca1.certPem);
    await assertClients({ c1: 'accepted', c2: 'rejected' });
  });

  it('refuses ca together with clientCA, and an unusable first bundle, with typed errors', async () => {
    assert.throws(() => keeper.tlsOptions({ ca: ca1.certPem, clientCA: { file: bundle } }), { code: 'ERR_INVALID_OPTION' });
    assert.throws(() => keeper.tlsOptions({ clientCA: { file: join(temp.dir, 'missing.pem') } }), { code: 'ERR_CERTIFICATE_FILE' });
    assert.throws(() => parseClientCaBundle(client1.leafPem), { code: 'ERR_CERTIFICATE_INVALID', message: /not a CA/ });
    assert.throws(() => parseClientCaBundle(''), { code: 'ERR_CERTIFICATE_INVALID' });
    assert.equal(parseClientCaBundle(`${ca1.certPem}\n${ca2.certPem}`).subjects.length, 2);
  });
});
