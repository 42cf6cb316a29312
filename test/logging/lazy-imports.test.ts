import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

// Structural, not timed: which packages the root entry loads. They are all CommonJS, so Node's
// require cache lists them whether they were reached by import or require.
const script = `
  import { createRequire } from 'node:module';
  await import(${JSON.stringify(new URL('../../src/index.ts', import.meta.url).href)});
  const cache = createRequire(import.meta.url)('module')._cache;
  const loaded = new Set(Object.keys(cache).map((k) => k.match(/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//)?.[1]).filter(Boolean));
  process.stdout.write(JSON.stringify([...loaded]));
`;

describe('importing the root entry', () => {
  it('does not load acme-client, @peculiar/x509, node-forge, pino, dns-packet or proper-lockfile', () => {
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(child.status, 0, child.stderr);
    const loaded = JSON.parse(child.stdout) as string[];
    for (const heavy of ['acme-client', 'axios', '@peculiar/x509', 'node-forge', 'pino', 'dns-packet', 'proper-lockfile']) {
      assert.ok(!loaded.includes(heavy), `${heavy} was loaded at import (loaded: ${loaded.join(', ')})`);
    }
  });
});
