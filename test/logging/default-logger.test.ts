import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

const script = `
  const { resolveConfig } = await import(${JSON.stringify(new URL('../../src/config/index.ts', import.meta.url).href)});
  const { MemoryStorage } = await import(${JSON.stringify(new URL('../../src/storage/memory.ts', import.meta.url).href)});
  const { logger } = resolveConfig({ storage: new MemoryStorage() });
  logger.info('info-line');
  logger.warn({ hmacKey: 'sekrit' }, 'warn-line');
`;

describe('the default logger of the library', () => {
  it("writes to stderr, never to the application's stdout, at warn level by default, secrets redacted", () => {
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout, '', 'nothing on stdout');
    assert.match(child.stderr, /"msg":"warn-line"/);
    assert.doesNotMatch(child.stderr, /info-line/, 'info is below the default level');
    assert.doesNotMatch(child.stderr, /sekrit/);
  });
});
