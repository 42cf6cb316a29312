/**
 * The ```ts blocks of the READMEs, as files a consumer project can type-check.
 * A block fenced ```ts no-check is a deliberate fragment (a list of one-liners,
 * an object property) and is left out. Blocks may use `keeper` and `app` without
 * declaring them, as the README's prose does (see READMEGLOBALS).
 */
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export interface ReadmeBlock {
  /** Where it comes from, e.g. `README.md:43`. */
  origin: string;
  /** File name for the consumer project, e.g. `README-43.ts`. */
  fileName: string;
  code: string;
}

/** What the README's snippets may use without declaring it: the keeper of the quick start and a request handler. */
export const README_GLOBALS = `declare const keeper: import('certkeeper').CertKeeper;
declare const app: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void;
`;

export function readmeBlocks(repoRoot: string, readmes: string[]): ReadmeBlock[] {
  const blocks: ReadmeBlock[] = [];
  for (const path of readmes) {
    const lines = readFileSync(path, 'utf8').split('\n');
    const name = relative(repoRoot, path).replaceAll('/', '_').replace(/\.md$/, '');
    for (let i = 0; i < lines.length; i++) {
      const fence = /^```ts(?:\s+(\S+))?\s*$/.exec(lines[i] as string);
      if (!fence) continue;
      const start = i + 1;
      let end = start;
      while (end < lines.length && lines[end] !== '```') end++;
      if (fence[1] !== 'no-check') {
        // `export {}` makes every block a module (its own scope, top-level await allowed).
        blocks.push({ origin: `${relative(repoRoot, path)}:${start}`, fileName: `${name}-${start}.ts`, code: `${lines.slice(start, end).join('\n')}\nexport {};\n` });
      }
      i = end;
    }
  }
  return blocks;
}

export function readmePaths(repoRoot: string): string[] {
  return [join(repoRoot, 'README.md'), join(repoRoot, 'storage-adapters', 'redis', 'README.md'), join(repoRoot, 'storage-adapters', 'postgres', 'README.md'), join(repoRoot, 'storage-adapters', 'etcd', 'README.md')];
}
