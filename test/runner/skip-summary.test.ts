import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

describe('npm test summary', () => {
  it('counts a suite skipped for a missing server and prints one install line', () => {
    const runner = new URL('../../scripts/run-tests.mjs', import.meta.url).pathname;
    const child = spawnSync(process.execPath, [runner, 'test/dns/rfc2136.test.ts'], {
      encoding: 'utf8',
      timeout: 200_000,
      cwd: new URL('../..', import.meta.url).pathname,
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, CI: '', CERTKEEPER_TEST_HIDE_BINARIES: 'named', CERTKEEPER_TEST_CONCURRENCY: '1' },
    });
    assert.equal(child.status, 0, child.stdout + child.stderr);
    const summary = child.stdout.trim().split('\n').at(-1);
    assert.match(summary ?? "", /^\d+ passed, 0 failed, [1-9]\d* skipped (\(\d+ tests and [1-9]\d* whole suites, whose tests did not run\) )\(missing: named; install: apt-get install -y bind9 bind9-dnsutils\)$/);
  });
});
