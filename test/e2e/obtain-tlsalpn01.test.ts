import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { AcmeIssuer } from '../../src/issuers/acme.js';
import { parseIdentifier } from '../../src/names.js';
import type { Solver } from '../../src/challenges/types.js';
import { TlsAlpn01Solver } from '../../src/challenges/tls-alpn01.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { ContextCache } from '../../src/tls/context-cache.js';
import { buildTlsOptions } from '../../src/tls/tls-options.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { assertValidChain } from '../challenges/e2e-verify.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

describe('obtain a certificate through TLS-ALPN-01 (real Pebble validation)', { skip }, () => {
  let pebble: PebbleHandle;
  const closers: Array<() => Promise<void>> = [];

  before(async () => {
    pebble = await startPebble();
  });
  after(async () => {
    for (const close of closers.reverse()) await close();
    await pebble?.stop();
  });

  function issuerWith(solver: Solver): AcmeIssuer {
    const issuer = new AcmeIssuer({
      directoryUrl: pebble.directoryUrl,
      caCertificates: pebble.pebbleCaPem,
      agreeToTerms: true,
      storage: new MemoryStorage(),
      solvers: { 'tls-alpn-01': solver },
      pollIntervalMs: 50,
    });
    closers.push(() => issuer.close());
    return issuer;
  }

  async function obtain(issuer: AcmeIssuer, names: string[]): Promise<void> {
    const identifiers = names.map((n) => parseIdentifier(n));
    const { keyPem, csr } = await createKeyAndCsr(identifiers);
    const issuedBefore = pebble.issuedCount();
    const { chainPem } = await issuer.issue({ identifiers, csr });
    assertValidChain(chainPem, await pebble.rootPem(), keyPem, names);
    assert.equal(pebble.issuedCount(), issuedBefore + 1);
  }

  test("through certkeeper's own TLS server options (SNI/ALPN callbacks of src/tls) on Pebble's TLS port", async () => {
    const solver = new TlsAlpn01Solver();
    const cache = new ContextCache();
    const server = tls.createServer(buildTlsOptions(cache, { ALPNProtocols: ['h2', 'http/1.1'] }, { alpnChallenges: solver.store }));
    server.on('secureConnection', (socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(pebble.tlsPort, '127.0.0.1', resolve));
    const stopServer = async (): Promise<void> => {
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
      cache.close();
    };
    closers.push(stopServer);
    await obtain(issuerWith(solver), ['tls.example.test', 'tls2.example.test']);
    assert.equal(solver.store.size, 0, 'challenge certificates are removed after validation');
    await stopServer(); // frees Pebble's TLS port for the next test
  });

  test('through the standalone TLS-ALPN-01 listener, closed again afterwards', async () => {
    const solver = new TlsAlpn01Solver({ listener: true, port: pebble.tlsPort, host: '127.0.0.1' });
    closers.push(() => solver.close());
    // 127.0.0.1 is validated with SNI 1.0.0.127.in-addr.arpa (RFC 8738).
    await obtain(issuerWith(solver), ['standalone.example.test', '127.0.0.1']);
    assert.equal(solver.listenerAddress(), undefined);
    assert.equal(solver.store.size, 0);
  });
});
