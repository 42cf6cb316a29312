import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createKeyAndCsr } from '../../src/acme/csr.js';
import { AcmeIssuer } from '../../src/issuers/acme.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { RecordingSolver, ids, leafSans, pebbleIssuer } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

describe('AcmeIssuer against Pebble (challenges always valid)', { skip }, () => {
  let pebble: PebbleHandle;
  const issuers: AcmeIssuer[] = [];
  before(async () => {
    pebble = await startPebble({ alwaysValid: true });
  });
  after(async () => {
    await Promise.all(issuers.map((i) => i.close()));
    await pebble?.stop();
  });

  it('issues a chain for DNS names and an IP address, verifying to the Pebble root', async () => {
    const solver = new RecordingSolver();
    const issuer = pebbleIssuer(pebble, { solvers: { 'http-01': solver } });
    issuers.push(issuer);
    const identifiers = ids('a.example.test', 'b.example.test', '127.0.0.1');
    const { csr, keyPem } = await createKeyAndCsr(identifiers);
    const result = await issuer.issue({ identifiers, csr });
    assert.deepEqual(leafSans(result.chainPem), ['DNS:a.example.test', 'DNS:b.example.test', 'IP Address:127.0.0.1']);
    const certs = result.chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    assert.ok(certs.length >= 2);
    const leaf = new X509Certificate(certs[0] as string);
    assert.ok(leaf.checkPrivateKey((await import('node:crypto')).createPrivateKey(keyPem)));
    const root = new X509Certificate(await pebble.rootPem());
    const top = new X509Certificate(certs[certs.length - 1] as string);
    assert.ok(top.verify(root.publicKey), 'the top of the chain is signed by the Pebble root');
    assert.equal(solver.presented.length, 3);
    assert.equal(solver.cleaned.length, 3, 'every presented challenge is cleaned up');
    assert.equal(pebble.issuedCount(), 1);
    assert.ok(result.issuerData?.orderUrl?.startsWith('https://127.0.0.1:'));
  });
});
