import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

// Structural, not timed: which modules `certkeeper --help` loads. A module-loader hook records every
// ES module URL (certkeeper's own sources); Node's require cache lists the CommonJS packages.
const hook = `
  let port;
  export async function initialize(data) { port = data.port; }
  export async function load(url, context, next) { port.postMessage(url); return next(url, context); }
`;
const src = new URL('../../src/', import.meta.url).href;
const script = `
  import { createRequire, register } from 'node:module';
  import { Writable } from 'node:stream';
  import { MessageChannel } from 'node:worker_threads';
  const { port1, port2 } = new MessageChannel();
  const urls = [];
  port1.on('message', (url) => urls.push(url));
  register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)}, { data: { port: port2 }, transferList: [port2] });
  const { run } = await import(${JSON.stringify(`${src}cli/program.ts`)});
  let help = '';
  const stdout = new Writable({ write(chunk, _encoding, done) { help += chunk; done(); } });
  const code = await run(JSON.parse(process.env.CK_TEST_ARGV), { stdout, stderr: process.stderr, stdin: process.stdin, env: {}, cwd: process.cwd(), signal: new AbortController().signal });
  // Messages from the hook thread arrive asynchronously: wait until they stop coming.
  for (let last = -1; last !== urls.length; ) { last = urls.length; await new Promise((r) => setTimeout(r, 100)); }
  port1.close();
  const cache = createRequire(import.meta.url)('module')._cache;
  const packages = [...new Set(Object.keys(cache).map((k) => k.match(/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//)?.[1]).filter(Boolean))];
  const sources = urls.filter((u) => u.startsWith(${JSON.stringify(src)})).map((u) => u.slice(${src.length}));
  process.stdout.write(JSON.stringify({ code, help, packages, sources }));
`;

function helpRun(args: string[]): { code: number; help: string; packages: string[]; sources: string[] } {
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, CK_TEST_ARGV: JSON.stringify(args) },
  });
  assert.equal(child.status, 0, child.stderr);
  return JSON.parse(child.stdout);
}

describe('certkeeper --help', () => {
  for (const args of [['--help'], ['obtain', '--help']]) {
    it(`${args.join(' ')} describes the commands without loading the manager, issuers, storage or heavy packages`, () => {
      const { code, help, packages, sources } = helpRun(args);
      assert.equal(code, 0);
      assert.match(help, /Usage: certkeeper/);
      // The hook saw the CLI itself, so an empty list below cannot pass by recording nothing.
      assert.ok(sources.includes('cli/program.ts'), `hook recorded: ${sources.join(', ')}`);
      for (const heavy of ['manager/keeper.ts', 'issuers/acme.ts', 'issuers/internal.ts', 'storage/file.ts', 'doctor/index.ts', 'config/index.ts', 'cli/demo.ts', 'cli/keeper.ts', 'dns/rfc2136.ts']) {
        assert.ok(!sources.includes(heavy), `src/${heavy} was loaded by ${args.join(' ')} (loaded: ${sources.join(', ')})`);
      }
      for (const heavy of ['acme-client', 'axios', '@peculiar/x509', 'node-forge', 'pino', 'dns-packet', 'proper-lockfile']) {
        assert.ok(!packages.includes(heavy), `${heavy} was loaded by ${args.join(' ')} (loaded: ${packages.join(', ')})`);
      }
    });
  }

  it('lists every command', () => {
    const { help } = helpRun(['--help']);
    for (const command of ['demo', 'obtain', 'renew', 'revoke', 'list', 'export', 'trust', 'doctor']) assert.match(help, new RegExp(`^  ${command}\\b`, 'm'));
  });
});
