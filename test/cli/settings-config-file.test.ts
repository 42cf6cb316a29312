import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readConfigFile } from '../../src/cli/settings.js';
import { loadDaemonConfig } from '../../src/daemon/config.js';
import { InvalidOptionError } from '../../src/errors.js';

// The CLI and the daemon read --config through the same function: both must say the same thing.
describe('--config file that cannot be used', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-config-file-'));
    await writeFile(join(dir, 'broken.json'), '{ "storage": ');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const readers = {
    'readConfigFile (CLI)': (path: string) => readConfigFile(path),
    'loadDaemonConfig (daemon)': (path: string) => loadDaemonConfig({ path, env: {}, cwd: dir }),
  };

  for (const [name, read] of Object.entries(readers)) {
    test(`${name}: a missing file is "cannot read <path>"`, () => {
      const path = join(dir, 'missing.json');
      assert.throws(() => read(path), (error: unknown) => {
        assert.ok(error instanceof InvalidOptionError);
        assert.equal(error.option, '--config');
        assert.match(error.message, new RegExp(`cannot read ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ENOENT`));
        return true;
      });
    });

    test(`${name}: broken JSON is "<path> is not valid JSON"`, () => {
      const path = join(dir, 'broken.json');
      assert.throws(() => read(path), (error: unknown) => {
        assert.ok(error instanceof InvalidOptionError);
        assert.equal(error.option, '--config');
        assert.ok(error.message.includes(`${path} is not valid JSON: `), error.message);
        assert.ok(error.cause instanceof SyntaxError);
        return true;
      });
    });
  }
});
