/**
 * keeper.statusHandler(): required authorization, JSON and HTML with every
 * certificate (managed, failing, loaded from files), rendered by headless
 * Chromium, with injected HTML shown as text.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CertKeeper } from '../../src/manager/keeper.js';
import { InvalidOptionError, ManageError } from '../../src/errors.js';
import type { StatusReport } from '../../src/http/status-report.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { FencedWrite } from '../../src/storage/types.js';
import { silentLogger } from '../helpers/logging.js';
import { findBinary, skipUnlessInstalled } from '../helpers/system.js';
import { createTestCa, createTestLeaf } from '../helpers/tls-certs.js';

const DAY = 86_400_000;
const FAILING = 'failing.status.test';
const INJECTED_ERROR = '<img src=x onerror="document.title=1"><script>document.title="pwned"</script> disk full';
// No '=' in it: the test CA's subject is written as a DN string.
const INJECTED_CA = '<b>Evil</b> & <i>Co</i> CA';
const TOKEN = 'status-token-0123456789';

class FailingStorage extends MemoryStorage {
  override async store(key: string, value: Uint8Array): Promise<void> {
    if (key.includes(FAILING)) throw new Error(INJECTED_ERROR);
    return super.store(key, value);
  }

  override async writeFenced(lock: string, writes: readonly FencedWrite[]): Promise<void> {
    if (writes.some((w) => w.key.includes(FAILING))) throw new Error(INJECTED_ERROR);
    return super.writeFenced(lock, writes);
  }
}

function runChromium(args: string[], userDataDir: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const chromium = findBinary('chromium') as string;
  return new Promise((resolve, reject) => {
    const child = spawn(chromium, [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', `--user-data-dir=${userDataDir}`, '--window-size=1400,900', ...args,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('keeper.statusHandler()', () => {
  let keeper: CertKeeper;
  let server: http.Server;
  let base: string;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-status-'));
    keeper = new CertKeeper({
      storage: new FailingStorage(),
      issuers: [{ type: 'internal' }],
      challenges: { http01: { listener: false }, tlsAlpn01: false },
      renewalPacing: false,
      logger: silentLogger(),
    });
    await assert.rejects(keeper.manageSync(['alpha.status.test', ['beta.status.test', 'www.beta.status.test'], FAILING]), ManageError);
    // A certificate from files, issued by a CA whose name carries HTML, 5 days from expiry.
    const ca = await createTestCa(INJECTED_CA);
    const leaf = await createTestLeaf(ca, { names: ['files.status.test'], notBefore: new Date(Date.now() - 85 * DAY), notAfter: new Date(Date.now() + 5 * DAY) });
    await writeFile(join(dir, 'cert.pem'), leaf.chainPem);
    await writeFile(join(dir, 'key.pem'), leaf.keyPem, { mode: 0o600 });
    await keeper.loadCertificateFiles({ cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), watch: false });
    const guarded = keeper.statusHandler({ authorize: (req) => req.headers.authorization === `Bearer ${TOKEN}` });
    const open = keeper.statusHandler({ public: true });
    server = http.createServer((req, res) => (req.url?.startsWith('/public') ? open : guarded)(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await keeper?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('nothing is exposed without authorize or an explicit public: true', async () => {
    assert.throws(() => keeper.statusHandler({}), InvalidOptionError);
    assert.throws(() => keeper.statusHandler({ public: false }), InvalidOptionError);
    assert.throws(() => keeper.statusHandler({ public: true, authorize: () => true }), InvalidOptionError);
    assert.equal((await fetch(`${base}/status`)).status, 403);
    assert.equal((await fetch(`${base}/status`, { headers: { authorization: 'Bearer wrong' } })).status, 403);
    assert.equal((await fetch(`${base}/status`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status, 405);
    const ok = await fetch(`${base}/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(ok.status, 200);
    assert.match(ok.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.equal(ok.headers.get('cache-control'), 'no-store');
  });

  test('JSON: every certificate with names, issuer, validity, next renewal and why, last error, source; no secrets', async () => {
    const response = await fetch(`${base}/status?format=json`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    const text = await response.text();
    const report = JSON.parse(text) as StatusReport;
    // Nothing served comes first, then soonest expiry.
    assert.deepEqual(report.certificates[0]?.names, [FAILING]);
    const expiries = report.certificates.slice(1).map((c) => Date.parse(c.notAfter as string));
    assert.deepEqual(expiries, [...expiries].sort((a, b) => a - b));
    assert.deepEqual(report.certificates.map((c) => [c.names.join(' '), c.source, c.state]).sort(), [
      ['alpha.status.test', 'managed', 'valid'],
      ['beta.status.test www.beta.status.test', 'managed', 'valid'],
      [FAILING, 'managed', 'failed'],
      ['files.status.test', 'files', 'valid'],
    ]);
    const failing = report.certificates.find((c) => c.names[0] === FAILING);
    // The storage error reaches the report as it was thrown (wrapped by the pre-order storage check), HTML and all.
    assert.ok(failing?.lastError?.message.endsWith(INJECTED_ERROR), failing?.lastError?.message);
    assert.equal(failing?.nextRenewalReason, 'retry');
    assert.equal(failing?.failures, 1);
    const alpha = report.certificates.find((c) => c.names[0] === 'alpha.status.test');
    assert.equal(alpha?.issuer, 'internal-local');
    assert.equal(alpha?.nextRenewalReason, 'lifetime');
    assert.ok(alpha?.notBefore && alpha.notAfter && alpha.nextRenewalAt && Date.parse(alpha.nextRenewalAt) < Date.parse(alpha.notAfter));
    const files = report.certificates.find((c) => c.source === 'files');
    assert.equal(files?.issuer, INJECTED_CA);
    assert.equal(files?.nextRenewalReason, 'not-renewed');
    assert.ok(files?.expiresInSeconds !== undefined && files.expiresInSeconds > 4 * 86_400 && files.expiresInSeconds <= 5 * 86_400);
    assert.doesNotMatch(text, /PRIVATE KEY|BEGIN CERTIFICATE/);
    // The same from the keeper directly.
    assert.deepEqual(keeper.statusReport().certificates.map((c) => c.names), report.certificates.map((c) => c.names));
  });

  test('HTML in headless Chromium: every certificate and the failure shown, injected HTML shown as text, offline; screenshot taken', { skip: skipUnlessInstalled('chromium') }, async () => {
    const profile = await mkdtemp(join(tmpdir(), 'certkeeper-chromium-'));
    try {
      const dom = await runChromium(['--dump-dom', `${base}/public/status`], profile);
      assert.equal(dom.code, 0, dom.stderr);
      const html = dom.stdout;
      for (const name of ['alpha.status.test', 'beta.status.test', 'www.beta.status.test', FAILING, 'files.status.test']) assert.ok(html.includes(name), name);
      assert.match(html, /Expiry timeline/);
      assert.match(html, /retry after failure/);
      assert.match(html, /lifetime rule/);
      assert.match(html, /not renewed here/);
      assert.match(html, /1 need attention|2 need attention/);
      // The injected markup is text: escaped in the DOM, no element made of it, no script ran.
      assert.ok(html.includes('&lt;script&gt;document.title="pwned"&lt;/script&gt;'), 'error message shown as text');
      assert.ok(html.includes('&lt;b&gt;Evil&lt;/b&gt; &amp; &lt;i&gt;Co&lt;/i&gt; CA'), 'CA name shown as text');
      assert.doesNotMatch(html, /<b>Evil|<i>Co/);
      assert.doesNotMatch(html, /<img src="x"/);
      assert.match(html, /<title>certkeeper status<\/title>/);
      assert.doesNotMatch(html, /https?:\/\/(?!127\.0\.0\.1)/, 'no external asset');

      const shot = join(profile, 'status.png');
      const screenshot = await runChromium([`--screenshot=${shot}`, `${base}/public/status`], profile);
      assert.equal(screenshot.code, 0, screenshot.stderr);
      assert.ok((await stat(shot)).size > 10_000, 'a screenshot with content');
      const png = await readFile(shot);
      assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
      if (process.env.CERTKEEPER_KEEP_SCREENSHOT) await writeFile(process.env.CERTKEEPER_KEEP_SCREENSHOT, png);
    } finally {
      await rm(profile, { recursive: true, force: true });
    }
  });
});
