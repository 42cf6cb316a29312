/**
 * `certkeeper renew` for cron: exit 0 when nothing failed whether or not
 * something was due, `--json` saying what was done, `--quiet` printing only
 * failures, and `--deploy-hook` / `--files` after a renewal (the internal CA
 * issues, so no ACME server is needed).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { completion, runCli, spawnCli, waitForOutput } from '../cli/helpers.js';
import { freePorts } from '../helpers/pebble.js';

describe('certkeeper renew for cron and scripts', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-renew-'));
    env = { CERTKEEPER_STORAGE: join(dir, 'storage'), CERTKEEPER_ISSUER: 'internal' };
    const obtained = await runCli(['obtain', 'cron.test', '--json'], env);
    assert.equal(obtained.code, 0, obtained.stderr);
    const [entry] = JSON.parse(obtained.stdout) as Array<{ names: string[]; obtained: boolean; serialNumber: string }>;
    assert.deepEqual([entry?.names, entry?.obtained, typeof entry?.serialNumber], [['cron.test'], true, 'string']);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('nothing due: exit 0; --quiet prints nothing; --json says not_due', async () => {
    const quiet = await runCli(['renew', '--quiet'], env);
    assert.deepEqual([quiet.code, quiet.stdout], [0, '']);
    const json = await runCli(['renew', '--json'], env);
    assert.equal(json.code, 0, json.stderr);
    const [entry] = JSON.parse(json.stdout) as Array<{ names: string[]; action: string; hooks: unknown[] }>;
    assert.deepEqual([entry?.names, entry?.action, entry?.hooks], [['cron.test'], 'not_due', []]);
  });

  test('a renewal writes --files and runs every --deploy-hook (argv, certbot variables), and --json reports both', async () => {
    const marker = join(dir, 'hook.txt');
    const hook = `${process.execPath} -e "require('fs').writeFileSync(process.argv[1], process.env.RENEWED_DOMAINS + '|' + process.env.RENEWED_LINEAGE + '|' + process.env.CERTKEEPER_SERIAL)" ${marker}`;
    const files = join(dir, 'live');
    const result = await runCli(['renew', '--force', '--json', '--files', files, '--deploy-hook', hook], env);
    assert.equal(result.code, 0, result.stderr);
    const [entry] = JSON.parse(result.stdout) as Array<{ action: string; serialNumber: string; hooks: Array<{ ok: boolean; attempts: number }> }>;
    assert.equal(entry?.action, 'renewed');
    assert.deepEqual(entry?.hooks.map((h) => [h.ok, h.attempts]), [[true, 1]]);
    const lineage = join(files, 'cron.test');
    assert.equal(await readFile(marker, 'utf8'), `cron.test|${lineage}|${entry?.serialNumber}`);
    const cert = await readFile(join(lineage, 'cert.pem'), 'utf8');
    assert.match(cert, /BEGIN CERTIFICATE/);
    assert.match(await readFile(join(lineage, 'combined.pem'), 'utf8'), /PRIVATE KEY[\s\S]+BEGIN CERTIFICATE/);
  });

  test('--json on trust, export and demo', async () => {
    const trust = await runCli(['trust', '--json'], env);
    assert.equal(trust.code, 0, trust.stderr);
    const { rootCertificate } = JSON.parse(trust.stdout) as { rootCertificate: string };
    assert.match(await readFile(rootCertificate, 'utf8'), /BEGIN CERTIFICATE/);
    const exported = await runCli(['export', 'cron.test', '--json'], env);
    assert.equal(exported.code, 0, exported.stderr);
    const set = JSON.parse(exported.stdout) as { names: string[]; certificatePem: string; privateKeyPem: string };
    assert.deepEqual(set.names, ['cron.test']);
    assert.match(set.certificatePem, /BEGIN CERTIFICATE/);
    assert.match(set.privateKeyPem, /PRIVATE KEY/);
    assert.equal((await runCli(['export', 'cron.test', '--json', '--format', 'p12', '--out', join(dir, 'x.p12')], env)).code, 2);

    const [port] = await freePorts(1);
    const demo = spawnCli(['demo', '--json', '--port', String(port), '--storage', join(dir, 'demo')], {});
    const exited = completion(demo);
    const [line] = await waitForOutput(demo, /^\{"event":"serving".*\}$/m, 120_000);
    const serving = JSON.parse(line) as { url: string; rootCertificate: string };
    assert.equal(serving.url, `https://localhost:${port}/`);
    demo.kill('SIGTERM');
    const done = await exited;
    assert.equal(done.code, 0);
    assert.match(done.stdout, /\{"event":"stopped"\}/);
  });

  test('every command has --json', async () => {
    for (const command of ['obtain', 'renew', 'revoke', 'list', 'status', 'export', 'trust', 'demo', 'doctor', 'run']) {
      const help = await runCli([command, '--help']);
      assert.equal(help.code, 0, command);
      assert.match(help.stdout, /^\s+--json\b/m, `${command} --help lists --json`);
    }
  });

  test('a name that is not stored is a usage error (exit 2), a malformed hook too', async () => {
    const missing = await runCli(['renew', 'other.test'], env);
    assert.equal(missing.code, 2);
    const badHook = await runCli(['renew', '--deploy-hook', "echo 'unterminated"], env);
    assert.equal(badHook.code, 2);
    assert.match(badHook.stderr, /--deploy-hook.*unterminated/);
  });
});
