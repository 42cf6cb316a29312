import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

// Structural, not timed: a keeper with an ACME issuer loads acme-client (and the axios, node-forge and
// @peculiar/x509 it pulls in, ~0.2 s of compiling) with its first ACME connection, not when constructed.
const script = `
  import { createRequire } from 'node:module';
  import { mkdtempSync, rmSync } from 'node:fs';
  import { tmpdir } from 'node:os';
  import { join } from 'node:path';
  const { CertKeeper, FileStorage } = await import(${JSON.stringify(new URL('../../src/index.ts', import.meta.url).href)});
  const root = mkdtempSync(join(tmpdir(), 'certkeeper-lazy-acme-'));
  const keeper = new CertKeeper({
    ca: 'https://127.0.0.1:9/dir',
    agreeToTerms: true,
    email: 'lazy@example.test',
    storage: new FileStorage({ root }),
    challenges: { http01: false },
    logLevel: 'silent',
  });
  keeper.tlsOptions();
  const cache = createRequire(import.meta.url)('module')._cache;
  const loaded = new Set(Object.keys(cache).map((k) => k.match(/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//)?.[1]).filter(Boolean));
  await keeper.close();
  rmSync(root, { recursive: true, force: true });
  process.stdout.write(JSON.stringify([...loaded]));
`;

describe('constructing a keeper with an ACME issuer', () => {
  it('does not load acme-client, axios, node-forge or @peculiar/x509', () => {
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(child.status, 0, child.stderr);
    const loaded = JSON.parse(child.stdout) as string[];
    // The scan sees node_modules packages (tsx runs this); pino itself now loads with the first log line.
    assert.ok(loaded.includes('tsx'), `the module cache was read (loaded: ${loaded.join(', ')})`);
    for (const heavy of ['acme-client', 'axios', 'node-forge', '@peculiar/x509']) {
      assert.ok(!loaded.includes(heavy), `${heavy} was loaded by the constructor (loaded: ${loaded.join(', ')})`);
    }
  });
});
