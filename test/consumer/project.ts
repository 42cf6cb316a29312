/**
 * A throw-away consumer project for test/consumer: every workspace package is
 * packed from the working tree (`npm pack`, which runs each `prepack` build)
 * and only those tarballs are installed, with production dependencies, into a
 * fresh directory that has its own package.json, as a user's project would.
 */
import { execFile, type ExecFileOptions } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The repository's own compiler, by absolute path: the consumer project installs no TypeScript. */
export const TSC = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const NPM_TIMEOUT_MS = 300_000;

export interface PackedFile {
  path: string;
}

export interface PackResult {
  name: string;
  version: string;
  filename: string;
  files: PackedFile[];
}

export interface ConsumerProject {
  /** Temporary directory holding the tarballs and the project; the caller removes it. */
  dir: string;
  /** The project directory (its node_modules holds the installed tarballs). */
  app: string;
  packs: PackResult[];
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** The environment without the npm_* variables an outer `npm test` sets (they would configure the inner npm). */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!/^npm_/i.test(name)) env[name] = value;
  return { ...env, ...extra };
}

export function run(file: string, args: string[], options: ExecFileOptions & { timeout: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { maxBuffer: 64 * 1024 * 1024, ...options, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${file} ${args.join(' ')} failed: ${error.message}\n${stdout}\n${stderr}`));
      else resolve({ stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

function repoVersion(name: string): string {
  return (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * Packs the root and every workspace into `<dir>/packs`, then installs the tarballs with
 * `--omit=dev` into `<dir>/app`. Besides them the project gets what a real TypeScript user of
 * these entry points has anyway: @types/node, and the optional peers whose types the subpaths name
 * (fastify for `certkeeper/fastify`, prom-client for `certkeeper/prometheus`, @opentelemetry/api for
 * `certkeeper/opentelemetry`), at the versions the repository tests with (so npm's cache serves them).
 */
export async function createConsumerProject(): Promise<ConsumerProject> {
  const dir = await mkdtemp(join(tmpdir(), 'certkeeper-consumer-'));
  // Backstop for a run cut short (a timeout skips `after` hooks): the directory never outlives the process.
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const packDir = join(dir, 'packs');
  const app = join(dir, 'app');
  await mkdir(packDir);
  await mkdir(app);
  const npm = { env: cleanEnv(), timeout: NPM_TIMEOUT_MS };
  const packed = await run('npm', ['pack', '--workspaces', '--include-workspace-root', '--json', '--pack-destination', packDir], { ...npm, cwd: REPO_ROOT });
  // Lifecycle banners (`> certkeeper@0.1.0 prepack`) may precede the JSON: it starts at the line holding only `[`.
  const start = packed.stdout.search(/^\[$/m);
  const packs = JSON.parse(packed.stdout.slice(Math.max(start, 0))) as PackResult[];
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'certkeeper-consumer', version: '1.0.0', private: true, type: 'module' }, null, 2));
  await run(
    'npm',
    [
      'install',
      '--omit=dev',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
      ...packs.map((p) => join(packDir, p.filename)),
      `@types/node@${repoVersion('@types/node')}`,
      `fastify@${repoVersion('fastify')}`,
      `prom-client@${repoVersion('prom-client')}`,
      `@opentelemetry/api@${repoVersion('@opentelemetry/api')}`,
    ],
    { ...npm, cwd: app },
  );
  return { dir, app, packs };
}
