// Bundles the package's JavaScript (run by `npm run build` and `prepack`, after tsc has written the
// declarations to dist/). Loading ~160 separate modules cost a 1-certificate start about 0.1 s of CPU
// in resolving, reading and linking them (issue #20); a few files do the same work in far less.
//
// Every entry of package.json (each "exports" target, the bin, the CPU worker) is bundled from src/
// with code splitting: a module reached from two entries lives in one shared chunk (dist/chunks/), so
// `certkeeper` and `certkeeper/storage` (etc.) share one copy of each class, registry and error brand.
// Dependencies stay external (installed by npm). Dynamic imports stay lazy (their own chunks).
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

const targets = new Set([
  ...Object.values(pkg.exports).flatMap((t) => (typeof t === 'string' ? [t] : [t.default])),
  ...Object.values(pkg.bin),
  // Started by src/cpu/offload.ts as `new URL('../cpu/worker.js', <its own chunk>)`.
  './dist/cpu/worker.js',
]);
const entryPoints = {};
for (const target of targets) {
  if (!target.startsWith('./dist/') || !target.endsWith('.js')) continue; // ./package.json
  const out = target.slice('./dist/'.length, -'.js'.length);
  entryPoints[out] = join(ROOT, 'src', `${out}.ts`);
}

// Tests run dist/ while another test packs the tree (prepack builds again): a file must never be missing
// for a moment. So nothing is deleted first; a file whose bytes change is replaced by a rename, and files
// of an earlier build (tsc wrote one per module before) are removed only after the new ones are in place.
function jsFiles(dir, out = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) jsFiles(path, out);
    else if (/\.js(\.map)?$/.test(entry.name)) out.push(path);
  }
  return out;
}

const result = await build({
  entryPoints,
  outdir: DIST,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  chunkNames: 'chunks/[name]-[hash]',
  // Class names are behaviour here (error names, the cross-copy instanceof in error-base.ts): keep them when the bundler renames.
  keepNames: true,
  sourcemap: 'linked',
  sourcesContent: false,
  tsconfig: join(ROOT, 'tsconfig.build.json'),
  metafile: true,
  absWorkingDir: ROOT,
  write: false,
  logLevel: 'warning',
});

const written = new Set();
let changed = 0;
for (const file of result.outputFiles) {
  written.add(file.path);
  let same = false;
  try {
    same = Buffer.compare(readFileSync(file.path), file.contents) === 0;
  } catch {}
  if (same) continue;
  mkdirSync(dirname(file.path), { recursive: true });
  const temp = `${file.path}.${process.pid}.tmp`;
  writeFileSync(temp, file.contents);
  renameSync(temp, file.path);
  changed++;
}
const stale = jsFiles(DIST).filter((path) => !written.has(path));
for (const path of stale) rmSync(path);

// The worker URL and the CLI's `../../package.json` are resolved from the module's own file: both
// hold only if that code sits one folder below dist/ (dist/chunks/, or dist/cli/ for the bin).
for (const [file, meta] of Object.entries(result.metafile.outputs)) {
  const inputs = Object.keys(meta.inputs);
  const depth = relative(DIST, join(ROOT, file)).split('/').length;
  for (const needy of ['src/cpu/offload.ts', 'src/cli/program.ts']) {
    if (inputs.includes(needy) && depth !== 2) throw new Error(`${needy} was bundled into ${file}, not one folder below dist/`);
  }
}
const js = result.outputFiles.filter((f) => f.path.endsWith('.js'));
const bytes = js.reduce((sum, f) => sum + f.contents.byteLength, 0);
console.log(`bundled ${Object.keys(entryPoints).length} entries into ${js.length} files (${(bytes / 1024).toFixed(0)} KiB; ${changed} written, ${stale.length} stale removed)`);
