/**
 * The `notify` CLI setting, through the BUILT bin (dist/cli/main.js) against
 * Pebble behind the test CA: a cron-style `obtain` / `renew` sends the
 * expiring, renewal-failing and renewed notifications to a webhook whose
 * receiver checks the HMAC signature, and to an exec hook; the secret comes
 * from a file or the environment and never appears in any output.
 *
 * The test CA dates its certificates by a clock set 86 days back, so a new
 * 90-day certificate has 4 days left: expiring (below 1/5) and, when its
 * renewal fails, in the emergency band (below 1/20).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { systemClock } from '../../src/clock.js';
import { startTestCa, type TestCa } from '../../src/testing/index.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { startReceiver, type Receiver } from '../notify/receiver.js';
import { REPO_ROOT, type CliResult } from './helpers.js';

const BIN = join(REPO_ROOT, 'dist', 'cli', 'main.js');
const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv') || (existsSync(BIN) ? false : 'dist/ not built; run npm run build');
const DAY_MS = 86_400_000;
const SECRET = 'cli-notify-secret-0123456789abcdef';

/** The built bin as cron runs it: its own process, env only (nothing inherited but PATH and HOME). */
function runBuilt(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env: { HOME: process.env.HOME, PATH: process.env.PATH, ...env }, timeout: 120_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('notify setting of the CLI (built bin, Pebble)', { skip }, () => {
  let pebble: PebbleHandle;
  let ca: TestCa;
  let receiver: Receiver;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let secretFile: string;
  let execLog: string;
  let execCommand: string;
  /** The test CA's clock offset: certificates are dated this far in the past. */
  let shift = -86 * DAY_MS;
  const outputs: CliResult[] = [];

  before(async () => {
    pebble = await startPebble();
    ca = await startTestCa({
      pebble: { directoryUrl: pebble.directoryUrl, managementUrl: pebble.managementUrl, caCertificate: pebble.pebbleCaPem },
      profiles: { classic: { lifetimeMs: 90 * DAY_MS } },
      clock: { now: () => Date.now() + shift, setTimer: systemClock.setTimer },
    });
    receiver = await startReceiver(SECRET);
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-notify-cli-'));
    const caRoot = join(dir, 'test-ca.pem');
    await writeFile(caRoot, ca.caCertificate);
    secretFile = join(dir, 'webhook.secret');
    await writeFile(secretFile, `${SECRET}\n`, { mode: 0o600 });
    execLog = join(dir, 'exec.log');
    // argv, no shell: the hook appends the JSON it gets on stdin, one line each.
    execCommand = `'${process.execPath}' -e 'const fs = require("fs"); fs.appendFileSync(process.argv[1], fs.readFileSync(0, "utf8") + "\\n")' '${execLog}'`;
    env = {
      CERTKEEPER_CA: ca.directoryUrl,
      CERTKEEPER_CA_ROOT: caRoot,
      CERTKEEPER_AGREE_TO_TERMS: '1',
      CERTKEEPER_STORAGE: join(dir, 'storage'),
      CERTKEEPER_HTTP_PORT: String(pebble.httpPort),
      CERTKEEPER_HTTP_HOST: '127.0.0.1',
      CERTKEEPER_TLS_ALPN_PORT: String(pebble.tlsPort),
      CERTKEEPER_TLS_ALPN_HOST: '127.0.0.1',
      // The most talkative level: whatever is logged is checked for the secret below.
      CERTKEEPER_LOG_LEVEL: 'debug',
    };
  });
  after(async () => {
    await receiver?.close();
    await ca?.close();
    await pebble?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const run = async (args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> => {
    const result = await runBuilt(args, { ...env, ...extraEnv });
    outputs.push(result);
    return result;
  };
  const flags = (): string[] => ['--notify-webhook', receiver.url, '--notify-secret-file', secretFile, '--notify-exec', execCommand];
  const ofType = (type: string) => receiver.deliveries.filter((d) => d.json.type === type);
  const execLines = async (): Promise<Array<Record<string, unknown>>> =>
    existsSync(execLog) ? (await readFile(execLog, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>) : [];

  test('a cron renew of a certificate with 4 days left whose renewal fails: cert_expiring and renewal_failing, signed, to the webhook and the exec hook', async () => {
    const obtained = await run(['obtain', 'notify.example.test', '--json', ...flags()]);
    assert.equal(obtained.code, 0, obtained.stderr);
    const [entry] = JSON.parse(obtained.stdout) as Array<{ serialNumber: string }>;
    // Obtaining is not a notified event; an unmanaged obtain has nothing expiring to watch.
    assert.equal(receiver.deliveries.length, 0);

    ca.injectFault({ endpoint: 'newOrder', status: 403, type: 'unauthorized', detail: 'orders refused by the test', times: Number.POSITIVE_INFINITY });
    const result = await run(['renew', '--quiet', ...flags()]);
    assert.equal(result.code, 1, result.stderr);
    const [expiring, failing] = [ofType('cert_expiring'), ofType('renewal_failing')];
    assert.deepEqual([expiring.length, failing.length], [1, 1], JSON.stringify(receiver.deliveries.map((d) => d.json)));
    for (const [delivery, type] of [[expiring[0], 'cert_expiring'], [failing[0], 'renewal_failing']] as const) {
      assert.equal(delivery?.signatureValid, true, type);
      assert.equal(delivery?.headers['x-certkeeper-event'], type);
      assert.deepEqual([delivery?.json.names, delivery?.json.source, delivery?.json.serialNumber], [['notify.example.test'], 'managed', entry?.serialNumber]);
    }
    assert.ok((expiring[0]?.json.remainingSeconds as number) < 5 * 86_400);
    assert.equal(typeof (failing[0]?.json.error as { code?: unknown }).code, 'string');
    const exec = await execLines();
    assert.deepEqual(exec.map((e) => e.type).sort(), ['cert_expiring', 'renewal_failing']);
    assert.deepEqual(exec.map((e) => e.key).sort(), [expiring[0]?.json.key, failing[0]?.json.key].sort());
  });

  test('the next cron run sends neither again (the markers in storage)', async () => {
    const before = receiver.requests;
    await run(['renew', '--quiet', ...flags()]);
    ca.clearFaults();
    assert.equal(receiver.requests, before);
    assert.equal((await execLines()).length, 2);
  });

  test('renew with the webhook and secret from the environment sends cert_renewed for the new certificate', async () => {
    shift = 0;
    // --force: the failures above put the name in backoff, which a plain renew respects.
    const renewEnv = { CERTKEEPER_NOTIFY_WEBHOOK: receiver.url, CERTKEEPER_NOTIFY_SECRET: SECRET, CERTKEEPER_NOTIFY_EVENTS: 'cert_renewed,renewal_failing' };
    let result = await run(['renew', '--force', '--json'], renewEnv);
    if (result.code === 1 && /lock lost while obtaining/.test(result.stderr)) {
      // A machine so loaded that the storage lock was not refreshed in time (FileStorage gives the name up rather than
      // risk a second writer): nothing was stored or notified, and the next cron run does the renewal.
      console.error('# renew lost its storage lock under load; running it again as the next cron run would');
      assert.equal(ofType('cert_renewed').length, 0);
      result = await run(['renew', '--force', '--json'], renewEnv);
    }
    assert.equal(result.code, 0, result.stderr);
    const [entry] = JSON.parse(result.stdout) as Array<{ action: string; serialNumber: string }>;
    assert.equal(entry?.action, 'renewed');
    const renewed = ofType('cert_renewed');
    assert.equal(renewed.length, 1);
    assert.equal(renewed[0]?.signatureValid, true);
    assert.deepEqual([renewed[0]?.json.serialNumber, renewed[0]?.json.renewalReason], [entry?.serialNumber, 'forced']);
  });

  test('a webhook without a secret, a short secret, a secret file that is missing: usage errors naming the flag, never the secret', async () => {
    const none = await run(['renew', '--notify-webhook', receiver.url]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--notify-secret-file.*is required/);
    const shortFile = join(dir, 'short.secret');
    await writeFile(shortFile, 'tooShortSecret\n', { mode: 0o600 });
    const short = await run(['renew', '--notify-webhook', receiver.url, '--notify-secret-file', shortFile]);
    assert.equal(short.code, 2);
    assert.match(short.stderr, /--notify-secret-file.*at least 16 characters/);
    assert.ok(!short.stderr.includes('tooShortSecret'));
    const missing = await run(['renew', '--notify-webhook', receiver.url, '--notify-secret-file', join(dir, 'absent')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--notify-secret-file.*cannot read .*absent: ENOENT/);
    const orphan = await run(['renew', '--notify-events', 'cert_renewed']);
    assert.equal(orphan.code, 2);
    assert.match(orphan.stderr, /--notify-webhook.*is required/);
  });

  test('the secret is in no output of any run (debug logs included)', () => {
    assert.ok(outputs.length >= 6);
    for (const { stdout, stderr } of outputs) {
      assert.ok(!stdout.includes(SECRET) && !stderr.includes(SECRET));
    }
    // A debug run does log: the check above reads real output.
    assert.ok(outputs.some((o) => o.stderr.includes('"level":') || o.stderr.includes('certkeeper:')));
  });
});
