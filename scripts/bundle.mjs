// Bundles the package's JavaScript (run by `npm run build` and `prepack`, after tsc has written the
// declarations to dist/). Loading ~160 separate modules cost a 1-certificate start about 0.1 s of CPU
// in resolving, reading and linking them (issue #20); Node pays per file, so the start path reads few.
//
// The subpaths that import no peer package (FOLDED) are one module, dist/chunks/core.js, holding each
// as a namespace; dist/index.js etc. are generated lines re-exporting from it. The other entries
// (SEPARATE: testing loads node:test, the metrics bridges their peer packages; the bin) are bundled in
// the same build with code splitting, so a module they share with core lives once, in a chunk, and every
// subpath sees one copy of each class, registry and error brand. (Splitting all ten entries instead made
// 66 chunks, one per set of entries reaching a module, and `import 'certkeeper'` read 39 files.) The CPU
// worker runs on its own thread (its own module instances anyway): a build of its own. Dependencies stay
// external (installed by npm); dynamic imports stay lazy, in their own chunks.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const FOLDED = ['index', 'storage/index', 'http/express', 'http/fastify', 'http/koa'];
const SEPARATE = ['testing/index', 'observability/prometheus', 'observability/opentelemetry', 'cli/main'];
// Started by src/cpu/offload.ts as `new URL('../cpu/worker.js', <its own file>)`.
const WORKER = 'cpu/worker';

const outputs = [...Object.values(pkg.exports).flatMap((t) => (typeof t === 'string' ? [t] : [t.default])), ...Object.values(pkg.bin)]
  .filter((t) => t.startsWith('./dist/') && t.endsWith('.js'))
  .map((t) => t.slice('./dist/'.length, -'.js'.length));
const unplaced = outputs.filter((o) => !FOLDED.includes(o) && !SEPARATE.includes(o));
if (unplaced.length > 0) throw new Error(`package.json names ${unplaced.join(', ')}: add them to FOLDED or SEPARATE in scripts/bundle.mjs`);

const src = (out) => join(ROOT, 'src', `${out}.ts`);
const common = {
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  // Class names are behaviour here (error names, the cross-copy instanceof in error-base.ts): keep them when the bundler renames.
  keepNames: true,
  tsconfig: join(ROOT, 'tsconfig.build.json'),
  absWorkingDir: ROOT,
  logLevel: 'warning',
};

// The export names of each folded subpath, for its re-export line.
const exportsOf = {};
for (const out of FOLDED) {
  const r = await build({ ...common, entryPoints: [src(out)], write: false, metafile: true, outdir: '/tmp/certkeeper-bundle-names' });
  exportsOf[out] = Object.values(r.metafile.outputs).find((o) => o.entryPoint !== undefined).exports;
}
const namespace = (out) => out.replace(/\W/g, '_');
const core = {
  name: 'core',
  setup(b) {
    b.onResolve({ filter: /^certkeeper:core$/ }, () => ({ path: 'core', namespace: 'core' }));
    b.onLoad({ filter: /.*/, namespace: 'core' }, () => ({
      contents: FOLDED.map((out) => `export * as ${namespace(out)} from ${JSON.stringify(src(out))};`).join('\n'),
      resolveDir: ROOT,
      loader: 'js',
    }));
  },
};

// A dynamic import() is a split point too, and the CLI has 25 of them: each made new sets of entries and
// cut core into more chunks. Within src/ they are made static (imports are hoisted, so appending them
// keeps the line numbers of the source maps); the CLI then loads its commands' modules with itself.
const staticImports = {
  name: 'static-imports',
  setup(b) {
    b.onLoad({ filter: /[\\/]src[\\/].*\.ts$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const hoisted = [];
      const contents = text.replace(/\bimport\((['"])(\.[^'"]+)\1\)/g, (_, quote, specifier) => {
        const name = `__static${hoisted.length}`;
        hoisted.push(`import * as ${name} from ${quote}${specifier}${quote};`);
        return `Promise.resolve(${name})`;
      });
      return { contents: hoisted.length === 0 ? text : `${contents}\n${hoisted.join('\n')}\n`, loader: 'ts' };
    });
  },
};

const results = [
  await build({
    ...common,
    entryPoints: { 'chunks/core': 'certkeeper:core', ...Object.fromEntries(SEPARATE.map((out) => [out, src(out)])) },
    plugins: [core, staticImports],
    outdir: DIST,
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    sourcemap: 'linked',
    sourcesContent: false,
    metafile: true,
    write: false,
  }),
  await build({ ...common, entryPoints: { [WORKER]: src(WORKER) }, outdir: DIST, sourcemap: 'linked', sourcesContent: false, metafile: true, write: false }),
];

const files = results.flatMap((r) => r.outputFiles.map((f) => ({ path: f.path, contents: Buffer.from(f.contents) })));
for (const out of FOLDED) {
  const names = exportsOf[out];
  const from = relative(dirname(join(DIST, out)), join(DIST, 'chunks', 'core.js'));
  const lines = [
    `// Generated by scripts/bundle.mjs: the code is in chunks/core.js, one copy for every subpath.`,
    `import { ${namespace(out)} as m } from '${from.startsWith('.') ? from : `./${from}`}';`,
    `export const { ${names.filter((n) => n !== 'default').join(', ')} } = m;`,
    ...(names.includes('default') ? ['export default m.default;'] : []),
  ];
  files.push({ path: join(DIST, `${out}.js`), contents: Buffer.from(`${lines.join('\n')}\n`) });
}

// The worker URL and the CLI's `../../package.json` are resolved from the module's own file: both
// hold only if that code sits one folder below dist/ (dist/chunks/, or dist/cli/ for the bin).
for (const r of results) {
  for (const [file, meta] of Object.entries(r.metafile.outputs)) {
    const depth = relative(DIST, join(ROOT, file)).split('/').length;
    for (const needy of ['src/cpu/offload.ts', 'src/cli/program.ts']) {
      if (needy in meta.inputs && depth !== 2) throw new Error(`${needy} was bundled into ${file}, not one folder below dist/`);
    }
  }
}

// Tests run dist/ while another test packs the tree (prepack builds again): a file must never be missing
// for a moment. So nothing is deleted first; a file whose bytes change is replaced by a rename, and files
// of an earlier build are removed only after the new ones are in place.
function jsFiles(dir, out = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) jsFiles(path, out);
    else if (/\.js(\.map)?$/.test(entry.name)) out.push(path);
  }
  return out;
}
let changed = 0;
for (const file of files) {
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
const written = new Set(files.map((f) => f.path));
const stale = jsFiles(DIST).filter((path) => !written.has(path));
for (const path of stale) rmSync(path);

const js = files.filter((f) => f.path.endsWith('.js'));
const bytes = js.reduce((sum, f) => sum + f.contents.byteLength, 0);
console.log(`bundled ${outputs.length + 1} entries into ${js.length} files (${(bytes / 1024).toFixed(0)} KiB; ${changed} written, ${stale.length} stale removed)`);
