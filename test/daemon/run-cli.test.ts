/**
 * `certkeeper run` as a process: a bad config file at start is a usage error
 * with a readable, typed message; SIGHUP with a bad file keeps the running
 * set (files untouched, no hook), with a good one adds what is new without
 * redeploying what did not change; SIGTERM stops it with exit status 0.
 * The internal CA issues, so no ACME server is needed.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli, spawnCli } from '../cli/helpers.js';
import { waitUntil } from './wait.js';

describe('certkeeper run (the process)', () => {
  let dir: string;
  const children: ChildProcess[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-run-'));
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  const configFile = async (name: string, body: Record<string, unknown>): Promise<string> => {
    const path = join(dir, name);
    await writeFile(path, JSON.stringify(body, null, 2));
    return path;
  };
  const base = () => ({ storage: 'storage', issuer: 'internal', files: { directory: 'live' } });
  /** A hook that appends the names it was run for to a file (argv, no shell). */
  const markerHook = (marker: string) => [process.execPath, '-e', `require('fs').appendFileSync(${JSON.stringify(marker)}, process.env.RENEWED_DOMAINS + ' ' + process.env.RENEWED_LINEAGE + '\\n')`];

  test('a bad configuration at start: exit 2, the field, the file and the error code on stderr', async () => {
    const path = await configFile('bad-start.json', { ...base(), certificates: [{ names: ['ok.test'] }, { names: ['not a name'] }] });
    const result = await runCli(['run', '--config', path], {});
    assert.equal(result.code, 2);
    assert.match(result.stderr, /Invalid option "certificates\[1\]\.names"/);
    assert.match(result.stderr, /contains whitespace/);
    assert.ok(result.stderr.includes(path), result.stderr);
    assert.match(result.stderr, /\[ERR_INVALID_OPTION\]/);
    const unknown = await runCli(['run', '--config', await configFile('typo.json', { ...base(), certficates: [] })], {});
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /Invalid option "certficates": is not a setting \(known: certificates,/);
    const missing = await runCli(['run'], {});
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--config.*is required/);
  });

  test('CERTKEEPER_CONFIG names the file; SIGHUP with a bad file keeps the running set, with a good one adds the new certificate; SIGTERM exits 0', async () => {
    const marker = join(dir, 'hooks.log');
    const good = { ...base(), deployHooks: [markerHook(marker)], certificates: [{ names: ['a.test', 'www.a.test'] }] };
    const path = await configFile('certkeeper.json', good);
    const child = spawnCli(['run', '--log-format', 'json'], { CERTKEEPER_CONFIG: path });
    children.push(child);
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const records = () => stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; err?: { message: string; code: string } });

    await waitUntil(() => records().some((r) => r.msg.startsWith('certkeeper daemon running')), 'the daemon to start', 120_000);
    await waitUntil(async () => (await readFile(marker, 'utf8').catch(() => '')).includes('a.test'), 'the first deploy hook');
    const lineageA = join(dir, 'live', 'a.test');
    assert.equal(await readFile(marker, 'utf8'), `a.test www.a.test ${lineageA}\n`);
    const certBefore = await readFile(join(lineageA, 'cert.pem'), 'utf8');
    const mtimeBefore = (await stat(join(lineageA, 'privkey.pem'))).mtimeMs;

    // A bad file: the error is logged with its code and field; nothing changes.
    await writeFile(path, JSON.stringify({ ...good, certificates: [...good.certificates, { names: ['b.test'], files: { mode: 'rw-r--r--' } }] }));
    child.kill('SIGHUP');
    await waitUntil(() => records().some((r) => r.msg.startsWith('configuration not reloaded')), 'the refused reload');
    const refused = records().find((r) => r.msg.startsWith('configuration not reloaded'));
    assert.equal(refused?.err?.code, 'ERR_INVALID_OPTION');
    assert.match(refused?.err?.message ?? '', /certificates\[1\]\.files\.mode/);
    assert.equal(child.exitCode, null, 'still running');
    assert.equal(await readFile(join(lineageA, 'cert.pem'), 'utf8'), certBefore);
    assert.equal((await stat(join(lineageA, 'privkey.pem'))).mtimeMs, mtimeBefore);

    // A good file: b.test is obtained and deployed; a.test's files are current, so its hook does not run again.
    await writeFile(path, JSON.stringify({ ...good, certificates: [...good.certificates, { names: ['b.test'] }] }));
    child.kill('SIGHUP');
    await waitUntil(() => records().some((r) => r.msg === 'configuration reloaded'), 'the reload');
    await waitUntil(async () => (await readFile(marker, 'utf8')).includes('b.test'), 'the hook of the new certificate');
    const lines = (await readFile(marker, 'utf8')).trim().split('\n');
    assert.deepEqual(lines, [`a.test www.a.test ${lineageA}`, `b.test ${join(dir, 'live', 'b.test')}`]);
    assert.equal(await readFile(join(lineageA, 'cert.pem'), 'utf8'), certBefore);

    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.ok(records().some((r) => r.msg === 'stopping'));
  });
});
