/**
 * A real wall-clock jump, as after a laptop or VM sleep: the built package runs in a child process under
 * libfaketime with FAKETIME_DONT_FAKE_MONOTONIC=1 (Date moves, the monotonic clock its timers count does not),
 * driven by a FAKETIME_TIMESTAMP_FILE the test rewrites while the child runs. Certificates come from the test CA
 * (Pebble behind it, real HTTP-01 validation); a real TLS client in this process, verifying against the CA's root,
 * checks what the child serves.
 *
 * Pebble and the test CA run in real time, so the dates are chosen to be valid for both clocks: the first
 * certificate is dated a day back by the test CA's clock (valid [T-1d, T+2d], due for renewal about T+12h), later
 * ones are dated now ([T, T+3d]). The child's clock then jumps by +60 h: its certificate has expired in its view,
 * its renewal timer still has about 12 h of monotonic time to wait, and a renewed certificate is valid for both.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../../src/clock.js';
import { startTestCa, type TestCa } from '../../src/testing/index.js';
import { eventually } from '../helpers/eventually.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { installLine, skipUnlessInstalled } from '../helpers/system.js';
import { handshake } from '../helpers/tls-client.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURE = join(ROOT, 'test', 'e2e', 'fixtures', 'faketime-keeper.mjs');

const LIBFAKETIME = ['x86_64-linux-gnu', 'aarch64-linux-gnu', 'i386-linux-gnu', '']
  .map((arch) => join('/usr/lib', arch, 'faketime', 'libfaketime.so.1'))
  .find((path) => existsSync(path));

const skip =
  skipUnlessInstalled('pebble', 'pebble-challtestsrv', 'faketime') ||
  (LIBFAKETIME === undefined ? `libfaketime.so.1 not found; ${installLine(['faketime'])}` : false) ||
  (existsSync(join(ROOT, 'dist', 'index.js')) ? false : 'dist/ not built; run npm run build');

type Fact = { event: string } & Record<string, unknown>;

describe('clock jump under libfaketime (built package, test CA on Pebble)', { skip }, () => {
  let pebble: PebbleHandle;
  let ca: TestCa;
  let dir: string;
  let child: ChildProcess | undefined;
  /** What the test CA's clock adds to real time: the first certificate is dated a day back. */
  let caOffset = -DAY;

  before(async () => {
    pebble = await startPebble();
    ca = await startTestCa({
      pebble: { directoryUrl: pebble.directoryUrl, managementUrl: pebble.managementUrl, caCertificate: pebble.pebbleCaPem },
      profiles: { short: { lifetimeMs: 3 * DAY, description: 'three days' } },
      defaultProfile: 'short',
      clock: { now: () => Date.now() + caOffset, setTimer: systemClock.setTimer },
    });
    dir = mkdtempSync(join(tmpdir(), 'certkeeper-faketime-'));
  });
  after(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    await ca?.close();
    await pebble?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('+60 h of wall time while monotonic time stands still: a valid, newly issued certificate is served soon after', { timeout: 120_000 }, async () => {
    const name = 'sleepy.example.test';
    const timestampFile = join(dir, 'faketime.rc');
    writeFileSync(timestampFile, '+0\n');
    const caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, ca.caCertificate);
    child = spawn(process.execPath, [FIXTURE, ca.directoryUrl, caFile, String(pebble.httpPort), name], {
      cwd: ROOT,
      env: {
        ...process.env,
        LD_PRELOAD: LIBFAKETIME,
        FAKETIME_TIMESTAMP_FILE: timestampFile,
        // Read the file on every call, so the jump is seen at once (the default caches it for 10 s).
        FAKETIME_NO_CACHE: '1',
        FAKETIME_DONT_FAKE_MONOTONIC: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const facts: Fact[] = [];
    const waiters: Array<() => void> = [];
    createInterface({ input: child.stdout! }).on('line', (line) => {
      facts.push(JSON.parse(line) as Fact);
      for (const wake of waiters.splice(0)) wake();
    });
    const fact = (event: string): Promise<Fact> =>
      new Promise((resolve, reject) => {
        const look = (): void => {
          const found = facts.find((f) => f.event === event);
          if (found) resolve(found);
          else if (child?.exitCode !== null) reject(new Error(`child exited before "${event}": ${stderr}`));
          else waiters.push(look);
        };
        child?.once('exit', look);
        look();
      });

    const ready = await fact('ready');
    const port = ready.port as number;
    const trust = ca.rootCertificate;
    const first = await handshake(port, name, trust, { rejectUnauthorized: true });
    assert.equal(first.serialNumber, String(ready.serialNumber).toUpperCase());
    assert.ok(first.authorized, 'the first certificate verifies (real time)');
    assert.equal(ca.certificates().length, 1);
    const original = ca.certificates()[0]!;
    assert.equal(original.notAfter.getTime() - original.notBefore.getTime(), 3 * DAY);
    assert.ok(original.notAfter.getTime() < Date.now() + 60 * HOUR, 'the first certificate is expired 60 h from now');

    // From here on the test CA dates certificates now: valid in real time and 60 h ahead alike.
    caOffset = 0;
    writeFileSync(timestampFile, '+60h\n');

    const jump = await fact('clock_jump');
    assert.ok(Math.abs((jump.deltaMs as number) - 60 * HOUR) < HOUR, `a jump of about +60 h was noticed (${String(jump.deltaMs)} ms)`);
    const renewed = await fact('cert_renewed');
    const served = await eventually(async () => {
      const peer = await handshake(port, name, trust, { rejectUnauthorized: true });
      if (peer.serialNumber === first.serialNumber) throw new Error('still the old certificate');
      return peer;
    });
    assert.equal(served.serialNumber, String(renewed.serialNumber).toUpperCase());
    assert.ok(served.authorized, 'the new certificate verifies against the CA root');
    assert.ok((renewed.notAfter as number) > Date.now() + 60 * HOUR, 'valid in the child\'s view, 60 h ahead');
    assert.equal(ca.certificates().length, 2, 'exactly one renewal');
    assert.equal(facts.filter((f) => f.event === 'cert_renewed').length, 1);
    assert.equal(facts.filter((f) => f.event === 'cert_failed').length, 0, stderr);
  });
});
