/**
 * certkeeper as a user gets it: every package is packed from the working tree and only the
 * tarballs are installed (production dependencies) into a fresh project, which then imports,
 * type-checks and runs them. One packed and installed project serves every test here.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { POSTGRES_URL, postgresSkipReason } from '../../storage-adapters/postgres/test/server.js';
import { REDIS_URL, redisSkipReason } from '../../storage-adapters/redis/test/server.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { cleanEnv, createConsumerProject, REPO_ROOT, run, TSC, type ConsumerProject, type PackResult } from './project.js';
import { README_GLOBALS, readmeBlocks, readmePaths } from './readme-blocks.js';
import { exitOnSignals } from '../helpers/exit-on-signal.js';
import { Redis } from 'ioredis';
import pg from 'pg';

const FIXTURES = join(REPO_ROOT, 'test', 'consumer', 'fixtures');
const RUN_TIMEOUT_MS = 120_000;
const TSC_TIMEOUT_MS = 180_000;
const rootPackage = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string; exports: Record<string, unknown> };

const children = new Set<ChildProcess>();
exitOnSignals();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function packOf(project: ConsumerProject, name: string): PackResult {
  const pack = project.packs.find((p) => p.name === name);
  assert.ok(pack, `${name} was packed`);
  return pack;
}

/** Type-checks `files` in the project with strict on, skipLibCheck off, under one module setting. */
async function typecheck(project: ConsumerProject, label: string, module: { module: string; moduleResolution: string }, files: string[]): Promise<void> {
  const config = join(project.app, `tsconfig.${label}.json`);
  // lib without "dom", as a Node project has it; skipDefaultLibCheck only skips TypeScript's own lib files.
  const compilerOptions = { ...module, target: 'ES2022', lib: ['ES2023'], types: ['node'], strict: true, skipLibCheck: false, skipDefaultLibCheck: true, noEmit: true };
  await writeFile(config, JSON.stringify({ compilerOptions, files }, null, 2));
  await run(process.execPath, [TSC, '-p', config, '--pretty', 'false'], { cwd: project.app, timeout: TSC_TIMEOUT_MS });
}

// The tests are independent (each writes its own files) and mostly wait on child processes: run them concurrently.
describe('the packed packages, installed from their tarballs into a fresh project', { concurrency: true }, () => {
  let project: ConsumerProject;
  before(async () => {
    project = await createConsumerProject();
    await copyFile(join(FIXTURES, 'smoke.mjs'), join(project.app, 'smoke.mjs'));
    await copyFile(join(FIXTURES, 'consumer.ts'), join(project.app, 'consumer.ts'));
  });
  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    if (project) await rm(project.dir, { recursive: true, force: true });
  });

  test('every tarball holds its JavaScript, declarations, README and LICENSE, and no source maps or build state', () => {
    const expected: Record<string, string[]> = {
      certkeeper: ['package.json', 'README.md', 'LICENSE', 'monitoring/alerts.yml', 'monitoring/dashboard.json', 'examples/daemon/certkeeper.service', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/storage/index.js', 'dist/storage/index.d.ts', 'dist/testing/index.js', 'dist/http/express.js'],
      '@certkeeper/storage-redis': ['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts'],
      '@certkeeper/storage-postgres': ['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts'],
      '@certkeeper/storage-etcd': ['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts'],
    };
    assert.deepEqual(project.packs.map((p) => p.name).sort(), Object.keys(expected).sort());
    for (const [name, required] of Object.entries(expected)) {
      const paths = packOf(project, name).files.map((f) => f.path);
      for (const path of required) assert.ok(paths.includes(path), `${name} ships ${path}`);
      // The root also ships its Prometheus alert rules (with their promtool test) and Grafana dashboard, and the daemon's examples (systemd unit, configs).
      const shipped = (p: string) =>
        /^dist\/.+\.(js|d\.ts)$/.test(p) || (name === 'certkeeper' && (/^monitoring\/[\w.-]+\.(yml|json)$/.test(p) || /^examples\/daemon\/[\w.-]+$/.test(p)));
      const stray = paths.filter((p) => !['package.json', 'README.md', 'LICENSE'].includes(p) && !shipped(p));
      assert.deepEqual(stray, [], `${name} ships only dist/*.js, dist/*.d.ts, README.md, LICENSE, package.json (and the root its monitoring/ files)`);
    }
    // Every export of the root package points at a file in its tarball.
    const rootPaths = new Set(packOf(project, 'certkeeper').files.map((f) => f.path));
    for (const [subpath, target] of Object.entries(rootPackage.exports)) {
      const targets = typeof target === 'string' ? [target] : Object.values(target as Record<string, string>);
      for (const file of targets) assert.ok(rootPaths.has(file.replace(/^\.\//, '')), `export ${subpath} -> ${file} is packed`);
    }
  });

  test('every package a shipped declaration imports is a dependency (or peer) of that package and ships its own types', async () => {
    for (const pack of project.packs) {
      const dir = join(project.app, 'node_modules', ...pack.name.split('/'));
      const manifest = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
      const declared = new Set([...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {})]);
      for (const file of pack.files.filter((f) => f.path.endsWith('.d.ts'))) {
        const text = await readFile(join(dir, file.path), 'utf8');
        for (const [, specifier] of text.matchAll(/(?:from|import\()\s*'([^'.][^']*)'/g)) {
          if ((specifier as string).startsWith('node:')) continue;
          // A package may name itself (a self-reference, or a usage line in a doc comment).
          if (specifier === pack.name || (specifier as string).startsWith(`${pack.name}/`)) continue;
          const name = (specifier as string).split('/').slice(0, (specifier as string).startsWith('@') ? 2 : 1).join('/');
          assert.ok(declared.has(name), `${pack.name}/${file.path} imports ${name}, which is not among its dependencies or peers`);
          const typed = JSON.parse(await readFile(join(project.app, 'node_modules', name, 'package.json'), 'utf8').catch(() => '{}')) as Record<string, unknown>;
          const hasTypes = typed.types !== undefined || typed.typings !== undefined || JSON.stringify(typed.exports ?? {}).includes('"types"');
          assert.ok(hasTypes || declared.has(`@types/${name}`), `${pack.name}/${file.path} imports ${name}, whose types a consumer does not get`);
        }
      }
    }
  });

  test('imports the root, every subpath and both adapters; each adapter stores, loads, locks and unlocks on the real server; a keeper serves a verified handshake', async (t) => {
    const skip = (await redisSkipReason()) || (await postgresSkipReason());
    if (skip) return t.skip(skip);
    const storageDir = join(project.dir, 'keeper-storage');
    const { stdout } = await run(process.execPath, ['smoke.mjs'], {
      cwd: project.app,
      timeout: RUN_TIMEOUT_MS,
      env: cleanEnv({ REDIS_URL, POSTGRES_URL, STORAGE_DIR: storageDir }),
    });
    const report = JSON.parse(stdout.trim().split('\n').at(-1) as string) as {
      run: string;
      exports: Record<string, string>;
      sameErrorClass: boolean;
      adapters: Record<string, { loaded: string; missing: string; secondTry: boolean; afterUnlock: boolean }>;
      handshake: { authorized: boolean; subjectAltName: string };
      urls: Record<string, string>;
    };
    t.after(() => removeLeftovers(report.run));
    assert.deepEqual(report.exports, { root: 'function', testing: 'function', express: 'function', fastify: 'function', koa: 'function', storage: 'function', prometheus: 'function', opentelemetry: 'function' });
    assert.equal(report.sameErrorClass, true, 'certkeeper/storage exports the same classes as certkeeper');
    for (const name of ['redis', 'postgres']) {
      assert.deepEqual(report.adapters[name], { loaded: `value from ${name}`, missing: 'StorageNotFoundError', secondTry: false, afterUnlock: true }, name);
    }
    assert.equal(report.urls.redis, 'RedisStorage', 'storageFromUrl found the installed Redis adapter');
    assert.equal(report.urls.postgres, 'PostgresStorage');
    const etcd = report.urls.etcd ?? '';
    assert.ok(etcd === 'EtcdStorage' || (etcd.startsWith('ERR_STORAGE_ADAPTER_MISSING: ') && etcd.includes('npm install @certkeeper/storage-etcd')), etcd);
    assert.equal(report.handshake.authorized, true, 'verified against the internal root');
    assert.match(report.handshake.subjectAltName, /DNS:localhost/);
  });

  test('require() of the ESM package works on this Node (require(esm): 20.19+, 22.12+)', async () => {
    const script = "const ck = require('certkeeper'); const s = require('certkeeper/storage'); console.log(typeof ck.CertKeeper, typeof s.LeaseLocks)";
    const { stdout } = await run(process.execPath, ['--input-type=commonjs', '-e', script], { cwd: project.app, timeout: RUN_TIMEOUT_MS, env: cleanEnv() });
    assert.equal(stdout.trim(), 'function function');
  });

  // One compiler run per module setting (each checks every declaration it loads, which takes a while).
  test('a consumer file and every ```ts block of the READMEs type-check with strict and skipLibCheck off (nodenext)', async () => {
    const blocks = readmeBlocks(REPO_ROOT, readmePaths(REPO_ROOT));
    assert.ok(blocks.length >= 8, `found ${blocks.length} blocks`);
    const dir = join(project.app, 'readme');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'globals.d.ts'), README_GLOBALS);
    for (const block of blocks) await writeFile(join(dir, block.fileName), block.code);
    await typecheck(project, 'nodenext', { module: 'nodenext', moduleResolution: 'nodenext' }, [
      'consumer.ts',
      'readme/globals.d.ts',
      ...blocks.map((b) => `readme/${b.fileName}`),
    ]);
  });

  test('the consumer file type-checks with strict and skipLibCheck off (module esnext, moduleResolution bundler)', async () => {
    await typecheck(project, 'bundler', { module: 'esnext', moduleResolution: 'bundler' }, ['consumer.ts']);
  });

  test('the installed bin: certkeeper --version, and certkeeper demo verified with curl --cacert', async (t) => {
    const bin = join(project.app, 'node_modules', '.bin', 'certkeeper');
    const version = await run(bin, ['--version'], { cwd: project.app, timeout: RUN_TIMEOUT_MS, env: cleanEnv() });
    assert.equal(version.stdout.trim(), rootPackage.version);

    const noCurl = skipUnlessInstalled('curl');
    if (noCurl) return t.skip(noCurl);
    const port = await freePort();
    const child = spawn(bin, ['demo', '--port', String(port), '--storage', join(project.dir, 'demo-storage')], {
      cwd: project.app,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      let output = '';
      const curlLine = await new Promise<string>((resolve, reject) => {
        const onData = (chunk: Buffer): void => {
          output += chunk.toString();
          const match = /^ {2}(curl --cacert \S+ https:\/\/localhost:\d+\/)$/m.exec(output);
          if (match?.[1]) resolve(match[1]);
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        void exited.then((code) => reject(new Error(`demo exited with ${code} before printing its curl line:\n${output}`)));
      });
      assert.ok(curlLine.endsWith(`https://localhost:${port}/`), curlLine);
      const [curl, ...args] = curlLine.split(' ');
      const { stdout } = await run(curl as string, ['-sS', '--max-time', '20', ...args], { timeout: RUN_TIMEOUT_MS });
      assert.match(stdout, /Hello from certkeeper/);
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exited, 0, 'the demo stops cleanly on SIGTERM');
      children.delete(child);
    }
  });
});

/** What smoke.mjs's run leaves on the shared Redis and PostgreSQL: keys under its prefixes, its tables. */
async function removeLeftovers(run: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    for (const prefix of [`ck-consumer-${run}:`, `ck-consumer-url-${run}:`]) {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
    }
  } finally {
    redis.disconnect();
  }
  const db = new pg.Client({ connectionString: POSTGRES_URL });
  await db.connect();
  try {
    for (const table of [`ck_consumer_${run}`, `ck_consumer_${run}_locks`, `ck_consumer_url_${run}`, `ck_consumer_url_${run}_locks`]) {
      await db.query(`DROP TABLE IF EXISTS "${table}"`);
    }
  } finally {
    await db.end();
  }
}
