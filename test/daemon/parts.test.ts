/** The daemon's parts on their own: config validation, the file writer, deploy hooks, the webroot solver. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { InvalidOptionError, DeployError, ChallengeFailedError } from '../../src/errors.js';
import { resolveDaemonConfig } from '../../src/daemon/config.js';
import { daemonKeeperOptions, openDaemonStorage } from '../../src/daemon/keeper.js';
import { writeCertificateFiles, lineageFiles } from '../../src/daemon/files.js';
import { resolveHook } from '../../src/daemon/config-parts.js';
import { runHookOnce, runHookWithRetries, type DeployedCertificate } from '../../src/daemon/hooks.js';
import { WebrootSolver } from '../../src/daemon/webroot-solver.js';
import { splitCommand } from '../../src/cli/deploy-hook.js';
import { parseIdentifier } from '../../src/names.js';
import { systemClock } from '../../src/clock.js';
import { silentLogger } from '../helpers/logging.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'certkeeper-daemon-parts-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const accounts = { passwd: 'root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n', group: 'root:x:0:\nnogroup:x:65534:\nssl-cert:x:110:\n' };
const resolve = (input: Record<string, unknown>) => resolveDaemonConfig(input, { path: join(dir, 'ck.json'), env: {}, cwd: dir, accounts });
const minimal = { files: { directory: 'live' }, certificates: [{ names: ['a.test'] }] };

describe('daemon config file', () => {
  test('resolves paths against the file, defaults modes, names the lineage after the first name, and is frozen', () => {
    const config = resolve({ ...minimal, storage: 'store', files: { directory: 'live', owner: 'nobody', group: 'ssl-cert', mode: '0640' }, certificates: [{ names: ['A.Test', '*.a.test'] }] });
    const [cert] = config.certificates;
    assert.deepEqual(cert?.names, ['a.test', '*.a.test']);
    assert.equal(cert?.lineage, join(dir, 'live', 'a.test'));
    assert.deepEqual({ ...cert?.files }, { directory: join(dir, 'live'), owner: 65534, group: 110, mode: 0o640, keyMode: 0o600 });
    assert.equal(config.settings.storage, join(dir, 'store'));
    assert.deepEqual(config.http01, { mode: 'listener', port: 80, host: '' });
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.certificates) && Object.isFrozen(cert));
  });

  test('every mistake is an InvalidOptionError naming the field and the file', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...minimal, certificates: [] }, /"certificates"/],
      [{ ...minimal, certificates: [{ names: ['a.test'] }, { names: ['A.test'] }] }, /"certificates\[1\]\.names": a\.test is already in certificates\[0\]/],
      [{ ...minimal, certificates: [{ names: ['a.test'], name: '../etc' }] }, /"certificates\[0\]\.name"/],
      [{ certificates: [{ names: ['a.test'] }] }, /"files\.directory": is required/],
      [{ ...minimal, files: { directory: 'live', owner: 'no-such-user' } }, /"files\.owner": no user named/],
      [{ ...minimal, files: { directory: 'live', keyMode: '0444' } }, /"files\.keyMode": must let the owner read and write/],
      [{ ...minimal, deployHooks: ['nginx -s reload'] }, /"deployHooks\[0\]"/],
      [{ ...minimal, deployHooks: [{ command: ['x'], shell: true }] }, /"deployHooks\[0\]\.shell": is not a hook setting/],
      [{ ...minimal, http01: { mode: 'proxy' } }, /"http01\.port": is required/],
      [{ ...minimal, http01: { mode: 'webroot' } }, /"certificates\[0\]\.webroot": is required/],
      [{ ...minimal, certificates: [{ names: ['a.test'], webroot: '/srv' }] }, /needs "http01": \{ "mode": "webroot" \}/],
      [{ ...minimal, notify: { webhook: { url: 'https://hooks.test/x', secret: 'short' } } }, /"notify\.webhook\.secret"/],
      [{ ...minimal, email: 'root@localhost' }, /config file "email"/],
    ];
    for (const [input, message] of cases) {
      assert.throws(() => resolve(input), (error: unknown) => {
        assert.ok(error instanceof InvalidOptionError, String(error));
        assert.match(error.message, message);
        assert.ok(error.message.includes(join(dir, 'ck.json')), error.message);
        return true;
      });
    }
  });

  test('the example config of examples/daemon/ is valid', async () => {
    const example = new URL('../../examples/daemon/certkeeper.json', import.meta.url).pathname;
    const config = resolveDaemonConfig(JSON.parse(await readFile(example, 'utf8')), { path: example, env: {}, cwd: dir, accounts });
    assert.deepEqual(config.certificates.map((c) => c.lineage), ['/etc/certkeeper/live/example.com', '/etc/certkeeper/live/lb.example.com']);
    assert.equal(config.certificates[0]?.webroot, '/var/www/html');
  });

  test('notify rides on the config file into the keeper options; the daemon answers no TLS-ALPN-01', async () => {
    const notify = { webhook: { url: 'https://hooks.test/certkeeper', secret: 'a-secret-of-16-chars-or-more' }, events: ['cert_renewed'] };
    const config = resolve({ ...minimal, storage: 'store', notify });
    const storage = await openDaemonStorage(config, silentLogger());
    try {
      const { options } = daemonKeeperOptions(config, storage, silentLogger());
      assert.deepEqual(options.notify, notify);
      assert.equal(options.challenges?.tlsAlpn01, false);
      assert.deepEqual(options.challenges?.http01, { port: 80, host: '', listener: true });
    } finally {
      await storage.close?.();
    }
  });

  test('flags and CERTKEEPER_* win over the file, as for every command', () => {
    const config = resolveDaemonConfig({ ...minimal, ca: 'letsencrypt' }, { path: join(dir, 'ck.json'), env: { CERTKEEPER_CA: 'letsencrypt-staging' }, cwd: dir, flags: { logLevel: 'debug' } });
    assert.match(config.settings.ca, /staging/);
    assert.equal(config.settings.logLevel, 'debug');
    assert.equal(config.logLevelSet, true);
  });
});

describe('certificate files', () => {
  const leaf = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----';
  const inter = '-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----';
  const key = '-----BEGIN PRIVATE KEY-----\nKKKK\n-----END PRIVATE KEY-----\n';
  const settings = { directory: '', owner: 65534, group: 65534, mode: 0o640, keyMode: 0o600 };

  test('five files with their modes and owner; rewritten only when something differs; no temporary file left', async () => {
    const lineage = join(dir, 'live', 'x.test');
    const first = await writeCertificateFiles(lineage, `${leaf}\n${inter}\n`, key, settings);
    assert.equal(first.changed, true);
    const files = lineageFiles(lineage);
    assert.equal(await readFile(files.cert, 'utf8'), `${leaf}\n`);
    assert.equal(await readFile(files.chain, 'utf8'), `${inter}\n`);
    assert.equal(await readFile(files.fullchain, 'utf8'), `${leaf}\n${inter}\n`);
    assert.equal(await readFile(files.combined, 'utf8'), `${key}${leaf}\n${inter}\n`);
    for (const [path, mode] of [[files.cert, 0o640], [files.privkey, 0o600], [files.combined, 0o600]] as const) {
      const info = await stat(path);
      assert.equal(info.mode & 0o7777, mode, path);
      if (process.getuid?.() === 0) assert.deepEqual([info.uid, info.gid], [65534, 65534]);
    }
    assert.deepEqual((await readdir(lineage)).sort(), ['cert.pem', 'chain.pem', 'combined.pem', 'fullchain.pem', 'privkey.pem']);
    assert.equal((await writeCertificateFiles(lineage, `${leaf}\n${inter}\n`, key, settings)).changed, false);
    assert.equal((await writeCertificateFiles(lineage, `${leaf}\n${inter}\n`, key, { ...settings, mode: 0o644 })).changed, true);
  });

  test('a folder that cannot be written is ERR_DEPLOY naming the lineage', async () => {
    const blocker = join(dir, 'a-file');
    await writeFile(blocker, 'x');
    await assert.rejects(writeCertificateFiles(join(blocker, 'lineage'), leaf, key, settings), (error: unknown) => {
      assert.ok(error instanceof DeployError);
      assert.equal(error.code, 'ERR_DEPLOY');
      assert.equal(error.stage, 'files');
      return true;
    });
  });
});

describe('deploy hooks', () => {
  const cert: DeployedCertificate = {
    names: ['a.test', 'www.a.test'],
    lineage: '/srv/live/a.test',
    files: lineageFiles('/srv/live/a.test'),
    serialNumber: '0A1B',
    notAfter: new Date('2030-01-01T00:00:00Z'),
    issuer: 'internal-local',
    renewal: true,
  };
  const node = (code: string, extra: Record<string, unknown> = {}) => resolveHook({ command: [process.execPath, '-e', code], ...extra }, 'hook');

  test('argv without a shell, certbot-compatible environment plus CERTKEEPER_*', async () => {
    const hook = node("const e = Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(RENEWED|CERTKEEPER)_/.test(k))); process.stdout.write(JSON.stringify(e) + ' $HOME')", {});
    const run = await runHookOnce(hook, cert);
    const env = JSON.parse(run.output.slice(0, run.output.lastIndexOf('}') + 1)) as Record<string, string>;
    assert.ok(run.output.endsWith(' $HOME'), 'no shell expanded anything');
    assert.equal(env.RENEWED_DOMAINS, 'a.test www.a.test');
    assert.equal(env.RENEWED_LINEAGE, '/srv/live/a.test');
    assert.equal(env.CERTKEEPER_KEY_PATH, '/srv/live/a.test/privkey.pem');
    assert.equal(env.CERTKEEPER_COMBINED_PATH, '/srv/live/a.test/combined.pem');
    assert.equal(env.CERTKEEPER_SERIAL, '0A1B');
    assert.equal(env.CERTKEEPER_RENEWAL, '1');
  });

  test('a failure carries the redacted end of the output; a timeout kills the hook', async () => {
    const secret = 'hunter2-very-secret';
    const failing = node(`console.error('token=abc123 and ' + process.env.API_SECRET); process.exit(3)`, { env: { API_SECRET: secret } });
    await assert.rejects(runHookOnce(failing, cert), (error: unknown) => {
      assert.ok(error instanceof DeployError);
      assert.match(error.message, /failed \(exit 3\)/);
      assert.ok(!error.message.includes(secret) && !error.message.includes('abc123'), error.message);
      return true;
    });
    const slow = node('setTimeout(() => {}, 60000)', { timeoutMs: 200 });
    await assert.rejects(runHookOnce(slow, cert), /did not finish within 200 ms and was killed/);
    const missing = resolveHook({ command: ['/nonexistent/hook'] }, 'hook');
    await assert.rejects(runHookOnce(missing, cert), /cannot run deploy hook \/nonexistent\/hook: ENOENT/);
  });

  test('a failed hook is retried with backoff until it succeeds, each failure reported', async () => {
    const counter = join(dir, 'attempts');
    await writeFile(counter, '0');
    // Fails twice, then succeeds.
    const hook = node(`const fs = require('fs'); const n = Number(fs.readFileSync(${JSON.stringify(counter)}, 'utf8')) + 1; fs.writeFileSync(${JSON.stringify(counter)}, String(n)); process.exit(n < 3 ? 1 : 0)`, { retries: 3, retryDelayMs: 10 });
    const failures: Array<{ attempt: number; retryInMs: number | undefined }> = [];
    const outcome = await runHookWithRetries(hook, cert, { clock: systemClock, logger: silentLogger(), onFailure: ({ attempt, retryInMs }) => failures.push({ attempt, retryInMs }) });
    assert.equal(outcome.ok, true);
    assert.equal(outcome.attempts, 3);
    assert.deepEqual(failures, [{ attempt: 1, retryInMs: 10 }, { attempt: 2, retryInMs: 20 }]);
    const never = await runHookWithRetries(node('process.exit(1)', { retries: 1, retryDelayMs: 1 }), cert, { clock: systemClock, logger: silentLogger() });
    assert.equal(never.ok, false);
    assert.equal(never.attempts, 2);
  });

  test('--deploy-hook text is split into argv like a shell splits words, and nothing more', () => {
    assert.deepEqual(splitCommand(`nginx -s reload`), ['nginx', '-s', 'reload']);
    assert.deepEqual(splitCommand(`sh -c 'echo $X; rm -rf /' "a b" c\\ d ''`), ['sh', '-c', 'echo $X; rm -rf /', 'a b', 'c d', '']);
    assert.throws(() => splitCommand(`echo 'open`), /unterminated/);
    assert.throws(() => splitCommand('   '), /must name a program/);
  });
});

describe('webroot solver', () => {
  const challenge = (name: string, token: string) => ({ identifier: parseIdentifier(name), type: 'http-01' as const, token, keyAuthorization: `${token}.thumb`, issuerKey: 'x' });

  test('writes the key authorization under .well-known/acme-challenge/ and removes it and its folders afterwards', async () => {
    const webroot = join(dir, 'www');
    const missing = new WebrootSolver({ webrootFor: () => webroot, logger: silentLogger() });
    await assert.rejects(missing.present(challenge('a.test', 'tok')), /the webroot .* does not exist/);
    await mkdir(webroot);
    const solver = new WebrootSolver({ webrootFor: (name) => (name === 'a.test' || name === 'b.test' ? webroot : undefined), logger: silentLogger() });
    await writeFile(join(dir, 'keep'), '');
    const a = challenge('a.test', 'tokenA_-1');
    const b = challenge('b.test', 'tokenB');
    await Promise.all([solver.present(a), solver.present(b)]);
    assert.equal(await readFile(join(webroot, '.well-known', 'acme-challenge', 'tokenA_-1'), 'utf8'), 'tokenA_-1.thumb');
    assert.equal((await stat(join(webroot, '.well-known', 'acme-challenge', 'tokenB'))).mode & 0o777, 0o644);
    await solver.cleanUp(a);
    assert.deepEqual(await readdir(join(webroot, '.well-known', 'acme-challenge')), ['tokenB']);
    await solver.cleanUp(b);
    assert.deepEqual(await readdir(webroot), []);
  });

  test('refuses a token that is not base64url and a name without a webroot', async () => {
    const solver = new WebrootSolver({ webrootFor: () => join(dir, 'www2'), logger: silentLogger() });
    await assert.rejects(solver.present(challenge('a.test', '../../etc/passwd')), (error: unknown) => error instanceof ChallengeFailedError && /not base64url/.test(error.message));
    const none = new WebrootSolver({ webrootFor: () => undefined, logger: silentLogger() });
    await assert.rejects(none.present(challenge('a.test', 'tok')), /no webroot is configured/);
  });
});
