/**
 * The package as users get it, for the benchmarks of issue 20: `npm pack` of the working tree
 * (its prepack builds dist/), the tarball installed with production dependencies only into a
 * fresh project, and the bench applications (bench/apps/*.mjs) copied next to it, so they run
 * with plain `node` and `import 'certkeeper'` resolves to the installed tarball, not to src/.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const APPS = fileURLToPath(new URL('../apps/', import.meta.url));

export interface PackedProject {
  /** The project directory: run the apps with `node <app>.mjs` here. */
  app: string;
  tarball: string;
  remove(): Promise<void>;
}

function run(cmd: string, args: string[], cwd: string): Promise<string> {
  // Without the npm_* variables an outer `npm run bench` sets (they would configure the inner npm).
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env, maxBuffer: 64 * 2 ** 20, timeout: 600_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${cmd} ${args.join(' ')}: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

export async function packedProject(log: (line: string) => void = console.log): Promise<PackedProject> {
  const dir = await mkdtemp(join(tmpdir(), 'certkeeper-bench-packed-'));
  const app = join(dir, 'app');
  await mkdir(app);
  log('packing the working tree (npm pack, which builds dist/) and installing the tarball into a fresh project');
  const out = await run('npm', ['pack', '--json', '--pack-destination', dir], REPO);
  const packs = JSON.parse(out.slice(Math.max(out.search(/^\[$/m), 0))) as { filename: string }[];
  const tarball = join(dir, (packs[0] as { filename: string }).filename);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'certkeeper-bench-app', version: '1.0.0', private: true, type: 'module' }, null, 2));
  await run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', tarball], app);
  for (const file of (await readdir(APPS)).filter((f) => f.endsWith('.mjs'))) await copyFile(join(APPS, file), join(app, file));
  return { app, tarball, remove: () => rm(dir, { recursive: true, force: true }) };
}
