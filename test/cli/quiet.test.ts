/**
 * `--quiet` is a global option every command honours: a successful run that
 * prints something without it prints nothing with it (stdout and stderr),
 * with the same exit code. The commands come from the COMMANDS registry, and
 * the table below must name every one of them (subcommands included), so a
 * new command cannot be added without being checked here.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Command } from 'commander';
import type { CommandHost } from '../../src/cli/command.js';
import { COMMANDS } from '../../src/cli/program.js';
import { resolveCliSettings } from '../../src/cli/settings.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { waitUntil } from '../daemon/wait.js';
import { freePort, runCli, type CliResult } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv');

/** Every leaf command's path ("storage copy"), from the registry itself. */
function registeredCommands(): string[] {
  const paths: string[] = [];
  const walk = (command: Command, prefix: string[]): void => {
    for (const sub of command.commands) {
      const path = [...prefix, sub.name()];
      if (sub.commands.length > 0) walk(sub, path);
      else paths.push(path.join(' '));
    }
  };
  for (const register of COMMANDS) {
    const program = new Command();
    register(program, {} as CommandHost);
    walk(program, []);
  }
  return paths.sort();
}

/** One successful invocation per command; `quiet` picks distinct names where a run consumes one (revoke). */
interface Invocation {
  args: (quiet: boolean) => string[];
  env?: 'acme' | 'internal';
  /** A long-running command: stopped through the abort signal once `ready` holds. */
  ready?: (quiet: boolean) => Promise<boolean>;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('every registered command', () => {
  test('has --json (its --help lists it) and takes the global --quiet', async () => {
    const paths = registeredCommands();
    assert.ok(paths.length >= 12, paths.join(', '));
    for (const path of paths) {
      const help = await runCli([...path.split(' '), '--help']);
      assert.equal(help.code, 0, path);
      assert.match(help.stdout, /^\s+--json\b/m, `${path} --help lists --json`);
      // A local --quiet would shadow the global one (and its setting): none may define it.
      assert.doesNotMatch(help.stdout, /^\s+--quiet\b/m, `${path} defines no --quiet of its own`);
    }
  });
});

describe('--quiet on every command', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  let acmeEnv: NodeJS.ProcessEnv;
  let internalEnv: NodeJS.ProcessEnv;
  const demoPorts: Record<'loud' | 'quiet', number> = { loud: 0, quiet: 0 };

  before(async () => {
    pebble = await startPebble();
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-quiet-'));
    const caRoot = join(dir, 'pebble-https-ca.pem');
    await writeFile(caRoot, pebble.pebbleCaPem);
    acmeEnv = {
      CERTKEEPER_CA: pebble.directoryUrl,
      CERTKEEPER_CA_ROOT: caRoot,
      CERTKEEPER_AGREE_TO_TERMS: '1',
      CERTKEEPER_STORAGE: join(dir, 'storage'),
      CERTKEEPER_HTTP_PORT: String(pebble.httpPort),
      CERTKEEPER_HTTP_HOST: '127.0.0.1',
      CERTKEEPER_TLS_ALPN_PORT: String(pebble.tlsPort),
      CERTKEEPER_TLS_ALPN_HOST: '127.0.0.1',
    };
    internalEnv = { CERTKEEPER_STORAGE: join(dir, 'internal'), CERTKEEPER_ISSUER: 'internal' };
    for (const name of ['q.example.test', 'revoke-loud.example.test', 'revoke-quiet.example.test']) {
      const obtained = await runCli(['obtain', name], acmeEnv);
      assert.equal(obtained.code, 0, obtained.stderr);
    }
    demoPorts.loud = await freePort();
    demoPorts.quiet = await freePort();
    await writeFile(join(dir, 'daemon-loud.json'), JSON.stringify({ storage: 'daemon-loud', issuer: 'internal', files: { directory: 'live-loud' }, certificates: [{ names: ['d.test'] }] }));
    await writeFile(join(dir, 'daemon-quiet.json'), JSON.stringify({ storage: 'daemon-quiet', issuer: 'internal', files: { directory: 'live-quiet' }, certificates: [{ names: ['d.test'] }] }));
  });
  after(async () => {
    await pebble?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const loudOrQuiet = (quiet: boolean): 'loud' | 'quiet' => (quiet ? 'quiet' : 'loud');
  const INVOCATIONS: Record<string, Invocation> = {
    demo: {
      args: (quiet) => ['demo', '--port', String(demoPorts[loudOrQuiet(quiet)]), '--storage', join(dir, `demo-${loudOrQuiet(quiet)}`)],
      ready: (quiet) => portOpen(demoPorts[loudOrQuiet(quiet)]),
    },
    obtain: { args: () => ['obtain', 'q.example.test'], env: 'acme' },
    renew: { args: () => ['renew'], env: 'acme' },
    revoke: { args: (quiet) => ['revoke', `revoke-${loudOrQuiet(quiet)}.example.test`], env: 'acme' },
    list: { args: () => ['list'], env: 'acme' },
    status: { args: () => ['status', 'q.example.test'], env: 'acme' },
    export: { args: (quiet) => ['export', 'q.example.test', '--out', join(dir, `q-${loudOrQuiet(quiet)}.pem`)], env: 'acme' },
    trust: { args: () => ['trust'], env: 'internal' },
    doctor: { args: () => ['doctor'], env: 'acme' },
    'storage copy': { args: (quiet) => ['storage', 'copy', '--from', join(dir, 'storage'), '--to', join(dir, `copy-${loudOrQuiet(quiet)}`)] },
    'storage verify': { args: () => ['storage', 'verify', join(dir, 'storage')] },
    run: {
      args: (quiet) => ['run', '--config', join(dir, `daemon-${loudOrQuiet(quiet)}.json`)],
      ready: async (quiet) => existsSync(join(dir, `live-${loudOrQuiet(quiet)}`, 'd.test', 'fullchain.pem')),
    },
  };

  test('the table names every registered command', () => {
    assert.deepEqual(Object.keys(INVOCATIONS).sort(), registeredCommands());
  });

  const invoke = async (invocation: Invocation, quiet: boolean): Promise<CliResult> => {
    const env = invocation.env === 'acme' ? acmeEnv : invocation.env === 'internal' ? internalEnv : {};
    const argv = [...invocation.args(quiet), ...(quiet ? ['--quiet'] : [])];
    if (invocation.ready === undefined) return runCli(argv, env, { cwd: dir });
    const stop = new AbortController();
    const running = runCli(argv, env, { cwd: dir, signal: stop.signal });
    let settled = false;
    void running.finally(() => (settled = true));
    await waitUntil(async () => settled || (await (invocation.ready as (q: boolean) => Promise<boolean>)(quiet)), `${argv[0]} ready`, 120_000);
    stop.abort(new Error('test done'));
    return running;
  };

  for (const [path, invocation] of Object.entries(INVOCATIONS)) {
    test(`${path}: output without --quiet, none with it, the same exit code`, async () => {
      const loud = await invoke(invocation, false);
      assert.equal(loud.code, 0, loud.stderr);
      assert.notEqual(loud.stdout + loud.stderr, '', `${path} prints something without --quiet`);
      const quiet = await invoke(invocation, true);
      assert.equal(quiet.code, loud.code, quiet.stderr);
      assert.deepEqual([quiet.stdout, quiet.stderr], ['', ''], `${path} --quiet`);
    });
  }

  test('--quiet keeps what was asked for: --json, and errors on stderr with their exit code', async () => {
    const json = await runCli(['list', '--json', '--quiet'], acmeEnv);
    assert.equal(json.code, 0);
    assert.deepEqual((JSON.parse(json.stdout) as Array<{ names: string[] }>).map((c) => c.names[0]).includes('q.example.test'), true);
    const missing = await runCli(['status', 'absent.example.test', '--quiet'], acmeEnv);
    assert.equal(missing.code, 2);
    assert.equal(missing.stdout, '');
    assert.match(missing.stderr, /no stored certificate covers absent\.example\.test/);
  });

  test('CERTKEEPER_QUIET and the config file set it; --quiet lowers the default log level to error, an explicit level wins', () => {
    const base = { flags: {}, cwd: '/' };
    assert.equal(resolveCliSettings({ ...base, env: { CERTKEEPER_QUIET: '1' } }).quiet, true);
    assert.equal(resolveCliSettings({ ...base, env: {}, file: { quiet: true } }).quiet, true);
    assert.equal(resolveCliSettings({ ...base, env: {} }).logLevel, 'warn');
    assert.equal(resolveCliSettings({ ...base, env: { CERTKEEPER_QUIET: 'yes' } }).logLevel, 'error');
    assert.equal(resolveCliSettings({ flags: { quiet: true, logLevel: 'info' }, env: {}, cwd: '/' }).logLevel, 'info');
  });
});
