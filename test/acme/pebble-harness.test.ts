import assert from 'node:assert/strict';
import https from 'node:https';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { X509Certificate } from 'node:crypto';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

function getDirectory(url: string, ca: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { body += c; });
        res.on('end', () => {
          try { resolve(JSON.parse(body) as Record<string, unknown>); } catch (e) { reject(e as Error); }
        });
      })
      .on('error', reject);
  });
}

describe('Pebble test harness', { skip }, () => {
  let pebble: PebbleHandle;
  before(async () => {
    pebble = await startPebble();
  });
  after(async () => {
    await pebble?.stop();
  });

  it('serves a directory over HTTPS trusted only through pebbleCaPem', async () => {
    const dir = await getDirectory(pebble.directoryUrl, pebble.pebbleCaPem);
    assert.equal(typeof dir.newOrder, 'string');
    // The system roots alone do not trust Pebble's per-run CA.
    await assert.rejects(getDirectory(pebble.directoryUrl, tls.rootCertificates.join('\n')), (e: NodeJS.ErrnoException) =>
      /CERT|SIGNATURE|ISSUER/.test(e.code ?? ''));
  });

  it('fetches the issuing root from the management API', async () => {
    const root = new X509Certificate(await pebble.rootPem());
    assert.ok(root.ca);
    assert.equal(root.subject, root.issuer);
  });

  it('runs challtestsrv as DNS and accepts management calls', async () => {
    assert.ok(pebble.challtestsrv);
    assert.match(pebble.challtestsrv.dnsServer, /^127\.0\.0\.1:\d+$/);
    await pebble.challtestsrv.setTxt('_acme-challenge.example.test', 'abc');
    await pebble.challtestsrv.clearTxt('_acme-challenge.example.test');
    await pebble.challtestsrv.addA('a.example.test', ['127.0.0.1']);
  });

  it('restarts on the same URL with a new issuing root', async () => {
    const before = await pebble.rootPem();
    await pebble.restart();
    const dir = await getDirectory(pebble.directoryUrl, pebble.pebbleCaPem);
    assert.equal(typeof dir.newAccount, 'string');
    assert.notEqual(await pebble.rootPem(), before);
    assert.equal(pebble.issuedCount(), 0);
  });

  it('stop() releases the port (connections are refused afterwards)', async () => {
    const other = await startPebble({ startChalltestsrv: false });
    await other.stop();
    await assert.rejects(getDirectory(other.directoryUrl, other.pebbleCaPem), (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED');
    await other.stop(); // idempotent
  });
});
