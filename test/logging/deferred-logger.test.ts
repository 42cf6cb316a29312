import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

// Structural, not timed: a keeper over FileStorage at the default level, built and asked for its
// TLS options (what an application does before serving stored certificates), loads no pino.
const src = (path: string): string => JSON.stringify(new URL(`../../src/${path}`, import.meta.url).href);
const loadedPackages = `
  const cache = (await import('node:module')).createRequire(import.meta.url)('module')._cache;
  const loaded = () => [...new Set(Object.keys(cache).map((k) => k.match(/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//)?.[1]).filter(Boolean))];
`;
const run = (body: string): { status: number | null; stdout: string; stderr: string } =>
  spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', loadedPackages + body], { encoding: 'utf8', timeout: 60_000 });

describe('the default logger, deferred', () => {
  it('is not loaded by a keeper that has nothing to log (construction and tlsOptions())', () => {
    const child = run(`
      const { mkdtempSync, rmSync } = await import('node:fs');
      const { CertKeeper, FileStorage } = await import(${src('index.ts')});
      const root = mkdtempSync('/tmp/certkeeper-deferred-logger-');
      const keeper = new CertKeeper({ storage: new FileStorage({ root }), issuers: [{ type: 'internal' }], challenges: { http01: false } });
      keeper.tlsOptions({ minVersion: 'TLSv1.3' });
      process.stdout.write(JSON.stringify(loaded()));
      await keeper.close();
      rmSync(root, { recursive: true, force: true });
    `);
    assert.equal(child.status, 0, child.stderr);
    const loaded = JSON.parse(child.stdout) as string[];
    assert.ok(!loaded.includes('pino'), `pino was loaded (loaded: ${loaded.join(', ')})`);
  });

  it('loads pino for the first enabled line, through children, and writes it to stderr with secrets redacted', () => {
    const child = run(`
      const { createDefaultLogger } = await import(${src('logger.ts')});
      const log = createDefaultLogger('warn').child({ component: 'c1' }).child({ part: 'p2' });
      log.info('info-line');
      log.debug({ x: 1 }, 'debug-line');
      const before = loaded().includes('pino');
      log.warn({ hmacKey: 'sekrit' }, 'warn-line');
      process.stdout.write(JSON.stringify({ before, after: loaded().includes('pino') }));
    `);
    assert.equal(child.status, 0, child.stderr);
    assert.deepEqual(JSON.parse(child.stdout), { before: false, after: true });
    const line = JSON.parse(child.stderr.trim().split('\n').at(-1) as string) as Record<string, unknown>;
    assert.equal(line.msg, 'warn-line');
    assert.equal(line.component, 'c1');
    assert.equal(line.part, 'p2');
    assert.equal(line.name, 'certkeeper');
    assert.doesNotMatch(child.stderr, /sekrit|info-line|debug-line/);
  });

  it("at 'silent' never loads pino", () => {
    const child = run(`
      const { createDefaultLogger } = await import(${src('logger.ts')});
      const log = createDefaultLogger('silent');
      log.fatal('x'); log.child({ a: 1 }).error({ err: new Error('e') }, 'y');
      process.stdout.write(JSON.stringify(loaded().includes('pino')));
    `);
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout, 'false');
    assert.equal(child.stderr, '');
  });
});
