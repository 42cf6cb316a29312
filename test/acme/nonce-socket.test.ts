/**
 * The first nonce is fetched on the socket the first POST then uses. A HEAD answer carries no
 * Content-Length (Node's server sends none, nor do Pebble and Boulder), and Node's client closes such a
 * socket, so HEAD newNonce cost every new account or order a second TLS connection.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import type { AcmeConnection } from '../../src/acme/connection.js';
import type { TrustHandle } from '../../src/acme/trust.js';
import { listenForConnections, type ConnectionFixture } from './connection-fixture.js';
import { createTestCa, createTestLeaf } from '../helpers/tls-certs.js';

describe('AcmeConnection: newNonce', () => {
  let server: https.Server;
  let base: string;
  let trust: TrustHandle;
  let fixture: ConnectionFixture;
  let connections = 0;
  let refuseGet = false;
  const methods: string[] = [];
  before(async () => {
    const ca = await createTestCa('nonce socket test CA');
    const leaf = await createTestLeaf(ca, { names: ['127.0.0.1'] });
    let counter = 0;
    server = https.createServer({ cert: leaf.chainPem, key: leaf.keyPem }, (req, res) => {
      req.resume();
      req.on('end', () => {
        const nonce = `n${++counter}`;
        if (req.url === '/dir') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ newNonce: `${base}/nonce`, newAccount: `${base}/acct`, newOrder: `${base}/order` }));
        } else if (req.url === '/nonce') {
          methods.push(req.method ?? '');
          if (req.method === 'GET' && refuseGet) res.writeHead(405, { allow: 'HEAD' }).end();
          else res.writeHead(req.method === 'GET' ? 204 : 200, { 'replay-nonce': nonce }).end();
        } else {
          res.writeHead(200, { 'content-type': 'application/json', 'replay-nonce': nonce }).end(JSON.stringify({ status: 'valid' }));
        }
      });
    });
    server.on('secureConnection', () => connections++);
    fixture = await listenForConnections(server, ca.certPem);
    ({ base, trust } = fixture);
  });
  after(() => fixture.close());

  const connection = (): AcmeConnection => fixture.connection();

  it('directory, nonce and the first POST go over one TLS connection', async () => {
    await connection().post(`${base}/thing`, null, { ok: [200], what: 'thing' });
    assert.equal(connections, 1, 'TLS connections opened');
    assert.deepEqual(methods, ['GET']);
  });

  it('a server refusing GET newNonce (405) is asked with HEAD', async () => {
    methods.length = 0;
    refuseGet = true;
    const resp = await connection().post(`${base}/thing`, null, { ok: [200], what: 'thing' });
    assert.equal(resp.status, 200);
    assert.deepEqual(methods, ['GET', 'HEAD']);
  });
});
