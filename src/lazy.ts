/**
 * Heavy dependencies, loaded on first use instead of at import: serving
 * stored certificates needs none of them, and together they cost about half
 * a second of start-up (acme-client with axios, @peculiar/x509 with its ASN.1
 * stack, node-forge, pino). They are CommonJS, so a synchronous require()
 * loads them at the point of need without making callers async; it shares
 * Node's module cache with `import`, so there is still one acme-client (and
 * one shared axios instance) per process.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

// import.meta.url is undefined when an application bundles certkeeper into CommonJS (esbuild, webpack); __filename then exists.
const require = createRequire((import.meta.url as string | undefined) ?? pathToFileURL(__filename).href);

/** A stand-in for a module namespace that requires the module on its first property access. */
export function lazyModule<T extends object>(id: string): T {
  return lazyObject(() => require(id) as T);
}

/** A stand-in for an object that is built on its first property access. */
export function lazyObject<T extends object>(build: () => T): T {
  let loaded: T | undefined;
  const load = (): T => (loaded ??= build());
  return new Proxy({} as T, {
    get: (_target, key) => Reflect.get(load(), key),
    has: (_target, key) => Reflect.has(load(), key),
  });
}
