/**
 * On-demand TLS and server names that are not host names: non-canonical IPv4 (`0x7f000001`, which a browser
 * connects to as 127.0.0.1), invalid A-labels (`xn--zz`), IP literals (RFC 6066 3 forbids them in SNI) and no
 * SNI at all. None of them may reach decide() or the CA; real handshakes (hand-built ClientHellos, since Node's
 * client does not send such names) against a keeper that allows every name it is asked about.
 */
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { describe, test } from 'node:test';
import { InternalIssuer } from '../../src/issuers/internal.js';
import type { IssueRequest, Issuer, IssuedCertificate } from '../../src/issuers/types.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/types.js';
import { silentLogger } from '../helpers/logging.js';
import { closeServer, listen } from './helpers.js';
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

interface Harness {
  keeper: CertKeeper;
  issuer: CountingIssuer;
  decided: string[];
  port: number;
  close(): Promise<void>;
}

/** A keeper whose decide() allows everything (and records what it saw) behind a real TLS server. */
async function harness(extra: { defaultServerName?: string } = {}): Promise<Harness> {
  const storage = new MemoryStorage();
  const issuer = new CountingIssuer(storage);
  const decided: string[] = [];
  const keeper = new CertKeeper({
    storage,
    issuers: [issuer],
    challenges: { http01: false, tlsAlpn01: { listener: false } },
    onDemand: { decide: (name) => (decided.push(name), true) },
    logger: silentLogger(),
    ...extra,
  });
  if (extra.defaultServerName !== undefined) await keeper.manageSync([extra.defaultServerName]);
  const server = tls.createServer(keeper.tlsOptions());
  const port = await listen(server);
  return {
    keeper,
    issuer,
    decided,
    port,
    close: async () => {
      await closeServer(server);
      await keeper.close();
    },
  };
}

/** The certificate names a Node client is served when it connects to 127.0.0.1 without SNI. */
function noSniHandshake(port: number): Promise<string | Error> {
  return new Promise((resolve) => {
    // An IP host and no servername: Node sends no server_name extension.
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().subjectaltname ?? '');
      socket.end();
    });
    socket.on('error', (error) => resolve(error));
    socket.setTimeout(10_000, () => socket.destroy(new Error('handshake timed out')));
  });
}

describe('fault: on-demand with server names that are no host names', () => {
  test('non-canonical IPv4 and invalid A-labels in SNI get no certificate and never reach decide()', async () => {
    const h = await harness();
    try {
      // The control: an ordinary name is allowed and served, so a refusal below is the name's doing.
      assert.equal(await sendClientHello(h.port, Buffer.from('control.example.test')), 'handshake');
      for (const name of ['0x7f000001', '127.0.0.0x1', '0x7f.1', '127.1', '0177.0.0.1', 'xn--zz', 'xn--zz.example.test', 'xn--ab-m1t.example.test', 'www.example.0x1f']) {
        assert.notEqual(await sendClientHello(h.port, Buffer.from(name)), 'handshake', `no certificate for ${name}`);
      }
      assert.deepEqual(h.decided, ['control.example.test'], 'only the valid name was decided on');
      assert.deepEqual(h.issuer.calls, ['control.example.test'], 'only the valid name was ordered');
      assert.deepEqual(h.keeper.list().map((s) => s.names).flat(), ['control.example.test']);
    } finally {
      await h.close();
    }
  });

  test('IP literals in SNI are ignored: no decide(), no order; the default certificate when there is one', async () => {
    const ips = ['127.0.0.1', '10.0.0.1', '::1', '[::1]', '2001:db8::1'];
    const bare = await harness();
    try {
      for (const ip of ips) assert.notEqual(await sendClientHello(bare.port, Buffer.from(ip)), 'handshake', `no certificate for ${ip}`);
      assert.deepEqual(bare.decided, []);
      assert.deepEqual(bare.issuer.calls, []);
    } finally {
      await bare.close();
    }
    const withDefault = await harness({ defaultServerName: 'default.example.test' });
    try {
      const ordered = withDefault.issuer.calls.length;
      for (const ip of ips) assert.equal(await sendClientHello(withDefault.port, Buffer.from(ip)), 'handshake', `the default certificate for ${ip}`);
      assert.deepEqual(withDefault.decided, []);
      assert.equal(withDefault.issuer.calls.length, ordered, 'no order for an IP literal');
    } finally {
      await withDefault.close();
    }
  });

  test('no SNI: the default certificate, or a failed handshake without one; never decide() or an order', async () => {
    const bare = await harness();
    try {
      assert.notEqual(await sendClientHello(bare.port, undefined), 'handshake');
      assert.ok((await noSniHandshake(bare.port)) instanceof Error, 'no certificate to serve without SNI');
      assert.deepEqual(bare.decided, []);
      assert.deepEqual(bare.issuer.calls, []);
    } finally {
      await bare.close();
    }
    const withDefault = await harness({ defaultServerName: 'default.example.test' });
    try {
      const ordered = withDefault.issuer.calls.length;
      assert.equal(await sendClientHello(withDefault.port, undefined), 'handshake');
      assert.equal(await noSniHandshake(withDefault.port), 'DNS:default.example.test');
      assert.deepEqual(withDefault.decided, []);
      assert.equal(withDefault.issuer.calls.length, ordered);
    } finally {
      await withDefault.close();
    }
  });
});
