/**
 * What a person sees when a command fails: the built bin run on a pseudo-terminal
 * (`script` from util-linux) and on pipes. Human lines by default on both, with
 * the code and a remedy naming CLI flags; pino JSON only with --log-format json.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { REPO_ROOT, type CliResult } from './helpers.js';

const BIN = join(REPO_ROOT, 'dist', 'cli', 'main.js');
const skipScript = skipUnlessInstalled('script') || (existsSync(BIN) ? false : 'dist/ not built; run npm run build');

const quote = (arg: string): string => `'${arg.replace(/'/g, `'\\''`)}'`;

/** Runs the built bin; with `tty` its stdout and stderr are one pseudo-terminal (read back as `stdout`). */
function runBin(args: string[], env: NodeJS.ProcessEnv, tty: boolean): Promise<CliResult> {
  const fullEnv = { HOME: process.env.HOME, PATH: process.env.PATH, ...env };
  const child = tty
    ? spawn('script', ['-qfec', [process.execPath, BIN, ...args].map(quote).join(' '), '/dev/null'], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, [BIN, ...args], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout: stdout.replace(/\r\n/g, '\n'), stderr }));
  });
}

function assertHuman(text: string): void {
  assert.doesNotMatch(text, /^ {4}at /m, 'no stack trace');
  assert.doesNotMatch(text, /\{"level"/, 'no pino JSON');
}

function assertJsonLines(text: string): Record<string, unknown>[] {
  const lines = text.split('\n').filter(Boolean);
  assert.ok(lines.length > 0, 'some log line');
  return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('CLI error output', { skip: skipScript }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-cli-errors-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const tty of [true, false]) {
    test(`a library option error names the CLI flag in one line with its code (${tty ? 'terminal' : 'pipes'})`, async () => {
      const r = await runBin(['obtain', 'a.test', '--ca', 'http://ca.test/dir'], { CERTKEEPER_STORAGE: dir }, tty);
      assert.equal(r.code, 2);
      const text = tty ? r.stdout : r.stderr;
      assertHuman(text);
      const lines = text.split('\n').filter((l) => l.startsWith('certkeeper:'));
      assert.deepEqual(lines, ['certkeeper: Invalid --ca: must use https [ERR_INVALID_OPTION]']);
      assert.match(text, /^ {2}hint: .*--ca/m);
    });
  }

  test('--log-format json: stderr is parseable pino lines carrying the code', async () => {
    const r = await runBin(['obtain', 'a.test', '--ca', 'http://ca.test/dir', '--log-format', 'json'], { CERTKEEPER_STORAGE: dir }, false);
    assert.equal(r.code, 2);
    const records = assertJsonLines(r.stderr);
    assert.ok(records.some((rec) => (rec.err as { code?: unknown } | undefined)?.code === 'ERR_INVALID_OPTION'));
  });

  test('--help states the log format default', async () => {
    const r = await runBin(['--help'], {}, false);
    assert.match(r.stdout.replace(/\s+/g, ' '), /--log-format <format>.*human \(default/);
  });
});

describe('CLI error output against Pebble', { skip: skipScript || skipUnlessInstalled('pebble', 'pebble-challtestsrv') }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-cli-terms-'));
    const caRoot = join(dir, 'pebble-https-ca.pem');
    await writeFile(caRoot, pebble.pebbleCaPem);
    // Terms not agreed: the account step refuses before any order.
    env = { CERTKEEPER_CA: pebble.directoryUrl, CERTKEEPER_CA_ROOT: caRoot, CERTKEEPER_STORAGE: join(dir, 'storage'), CERTKEEPER_HTTP_PORT: String(pebble.httpPort), CERTKEEPER_HTTP_HOST: '127.0.0.1' };
  });
  after(async () => {
    await pebble?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  for (const tty of [true, false]) {
    test(`terms not agreed: the hint is --agree-to-terms, no stack, no JSON (${tty ? 'terminal' : 'pipes'})`, async () => {
      const r = await runBin(['obtain', 'terms.example.test'], env, tty);
      assert.equal(r.code, 1);
      const all = r.stdout + r.stderr;
      assertHuman(all);
      assert.equal(all.match(/ERR_TERMS_NOT_AGREED/g)?.length, 1, 'the error is said once (no warn log beside the failure report)');
      assert.equal(all.match(/hint: .*--agree-to-terms/g)?.length, 1, 'the remedy once, with the failure report');
      assert.doesNotMatch(all, /agreeToTerms: true/);
      // Each stderr record is one line; none repeats the library's option wording.
      for (const line of r.stderr.split('\n').filter(Boolean)) assert.match(line, /^certkeeper: /);
    });
  }

  test('terms not agreed with --log-format json: stderr is parseable JSON lines', async () => {
    const r = await runBin(['obtain', 'terms.example.test', '--log-format', 'json'], env, false);
    assert.equal(r.code, 1);
    // Whatever the library logs is JSON; the failed name itself is the command's result, on stdout, said once.
    for (const line of r.stderr.split('\n').filter(Boolean)) JSON.parse(line);
    assert.equal((r.stdout + r.stderr).match(/ERR_TERMS_NOT_AGREED/g)?.length, 1);
  });
});
