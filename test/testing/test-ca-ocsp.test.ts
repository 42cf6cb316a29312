import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { skipUnlessInstalled } from '../helpers/system.js';
import { startStack, type Stack } from './stack.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv', 'openssl');
const run = promisify(execFile);

describe('test CA: OCSP answers, checked by openssl', { skip }, () => {
  let stack: Stack;
  let dir: string;
  before(async () => {
    stack = await startStack({ ocsp: true });
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-test-ca-ocsp-'));
    await writeFile(join(dir, 'intermediate.pem'), stack.ca.intermediateCertificate);
    await writeFile(join(dir, 'root.pem'), stack.ca.rootCertificate);
  });
  after(async () => {
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** openssl ocsp against the responder the certificate names; resolves with its report. */
  const ocsp = async (leafPem: string, ...extra: string[]): Promise<string> => {
    await writeFile(join(dir, 'leaf.pem'), leafPem);
    const url = new X509Certificate(leafPem).infoAccess?.match(/OCSP - URI:(\S+)/)?.[1];
    assert.equal(url, stack.ca.ocspUrl, 'the certificate names the responder');
    const { stdout, stderr } = await run('openssl', [
      'ocsp', '-issuer', join(dir, 'intermediate.pem'), '-cert', join(dir, 'leaf.pem'), '-CAfile', join(dir, 'root.pem'), '-url', url as string, ...extra,
    ]);
    return `${stdout}${stderr}`;
  };

  it('answers good, then revoked with the reason, signed by the intermediate and echoing the nonce', async () => {
    const client = await stack.client();
    const { chainPem } = await stack.obtain(client, ['ocsp.example.test'], { profile: 'shortlived' });
    const good = await ocsp(chainPem);
    assert.match(good, /Response verify OK/);
    assert.match(good, /leaf\.pem: good/);
    assert.doesNotMatch(good, /WARNING: no nonce/);

    await client.revokeCertificate(chainPem, { reason: 1 });
    const revoked = await ocsp(chainPem, '-reqout', join(dir, 'request.der'));
    assert.match(revoked, /Response verify OK/);
    assert.match(revoked, /leaf\.pem: revoked/);
    assert.match(revoked, /Reason: keyCompromise/);
    assert.ok(stack.ca.requests('ocsp') >= 2);

    // GET with the base64 request in the path (RFC 6960 appendix A.1) gets the same status.
    const request = (await readFile(join(dir, 'request.der'))).toString('base64');
    const answer = await stack.getBytes(`${stack.ca.ocspUrl}/${encodeURIComponent(request)}`);
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-type'], 'application/ocsp-response');
    await writeFile(join(dir, 'response.der'), answer.body);
    // -cert makes openssl build a request of its own (another nonce): the nonce was checked above.
    const { stdout, stderr } = await run('openssl', ['ocsp', '-no_nonce', '-respin', join(dir, 'response.der'), '-issuer', join(dir, 'intermediate.pem'), '-CAfile', join(dir, 'root.pem'), '-cert', join(dir, 'leaf.pem')]);
    assert.match(`${stdout}${stderr}`, /Response verify OK/);
    assert.match(stdout, /leaf\.pem: revoked/);
  });

  it('answers a malformed request with the malformedRequest status', async () => {
    const response = await fetch(stack.ca.ocspUrl as string, { method: 'POST', body: Buffer.from('not der'), headers: { 'content-type': 'application/ocsp-request' } });
    assert.equal(response.status, 200);
    assert.deepEqual([...new Uint8Array(await response.arrayBuffer())], [0x30, 0x03, 0x0a, 0x01, 0x01]);
  });
});
