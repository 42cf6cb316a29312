/**
 * Fabricated certificate stores for the serving, rotation and start-up
 * benchmarks. Issuing 100,000 certificates through an issuer would take hours,
 * so this writes them directly: one bench CA (ECDSA P-256), one leaf key shared
 * by every certificate (handshake cost does not depend on which key, only
 * generation time does), and a DER writer that signs a minimal leaf per name.
 * Each set goes through the real `saveCertificateSet`, so the layout and the
 * sidecar are exactly what certkeeper writes; only the fsyncs are skipped
 * (a throwaway store does not need durability).
 *
 * Stores under bench/.cache/ are kept between runs (see MANIFEST) and rebuilt
 * when missing, incomplete or older than STORE_MAX_AGE_MS.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StorageNotFoundError } from '../../src/errors.js';
import { buildCertificateMeta, saveCertificateSet } from '../../src/storage/certificates.js';
import type { KeyInfo, Storage } from '../../src/storage/types.js';

export const BENCH_CACHE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '.cache');
/** The internal issuer's storage key: every fabricated store is filed under it, so a keeper with `issuers: [{ type: 'internal' }]` finds them. */
export const BENCH_ISSUER_KEY = 'internal-local';
const MANIFEST = 'bench-manifest.json';
const MANIFEST_VERSION = 2;
const DAY_MS = 86_400_000;
/** Certificates are valid for a year, so a store stays far from its renewal window for this long. */
const STORE_MAX_AGE_MS = 30 * DAY_MS;

export const benchName = (i: number): string => `n${i}.bench.test`;

// ---- Minimal DER certificate writer (@peculiar/x509 needs ~5 ms per certificate: too slow for 100,000). ----

function der(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}
const seq = (...p: Buffer[]): Buffer => der(0x30, ...p);
const OID_ECDSA_SHA256 = Buffer.from('06082a8648ce3d040302', 'hex');
const OID_CN = Buffer.from('0603550403', 'hex');
const OID_SAN = Buffer.from('0603551d11', 'hex');
const OID_BASIC_CONSTRAINTS = Buffer.from('0603551d13', 'hex');
const utcTime = (d: Date): Buffer => der(0x17, Buffer.from(`${d.toISOString().slice(2, 19).replace(/[-T:]/g, '')}Z`));
const cnName = (cn: string): Buffer => seq(der(0x31, seq(OID_CN, der(0x0c, Buffer.from(cn)))));
const CA_NAME = 'certkeeper bench CA';

function toPem(derBytes: Buffer): string {
  const lines = derBytes.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

function signCertificate(tbs: Buffer, caKey: KeyObject): string {
  const signature = sign('sha256', tbs, caKey);
  return toPem(seq(tbs, seq(OID_ECDSA_SHA256), der(0x03, Buffer.from([0]), signature)));
}

function serialBytes(serial: number): Buffer {
  // Fixed width, high bit clear: a minimal positive DER INTEGER.
  return Buffer.from((0x10000000 + serial).toString(16), 'hex');
}

export interface BenchCa {
  caKey: KeyObject;
  caPem: string;
  leafKey: KeyObject;
  leafKeyPem: string;
  leafSpki: Buffer;
}

export function createBenchCa(): BenchCa {
  const ca = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const leaf = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const now = Date.now();
  const tbs = seq(
    der(0xa0, der(0x02, Buffer.from([2]))),
    der(0x02, serialBytes(0)),
    seq(OID_ECDSA_SHA256),
    cnName(CA_NAME),
    seq(utcTime(new Date(now - 2 * DAY_MS)), utcTime(new Date(now + 400 * DAY_MS))),
    cnName(CA_NAME),
    ca.publicKey.export({ type: 'spki', format: 'der' }),
    der(0xa3, seq(seq(OID_BASIC_CONSTRAINTS, der(0x01, Buffer.from([0xff])), der(0x04, seq(der(0x01, Buffer.from([0xff]))))))),
  );
  return {
    caKey: ca.privateKey,
    caPem: signCertificate(tbs, ca.privateKey),
    leafKey: leaf.privateKey,
    leafKeyPem: leaf.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    leafSpki: leaf.publicKey.export({ type: 'spki', format: 'der' }),
  };
}

/** A leaf for `name` signed by the bench CA, followed by the CA certificate (a chain in serving order). */
export function leafChainPem(ca: BenchCa, name: string, serial: number, lifetimeDays = 365): string {
  const now = Date.now();
  const tbs = seq(
    der(0xa0, der(0x02, Buffer.from([2]))),
    der(0x02, serialBytes(serial)),
    seq(OID_ECDSA_SHA256),
    cnName(CA_NAME),
    seq(utcTime(new Date(now - DAY_MS)), utcTime(new Date(now + lifetimeDays * DAY_MS))),
    cnName(name),
    ca.leafSpki,
    der(0xa3, seq(seq(OID_SAN, der(0x04, seq(der(0x82, Buffer.from(name))))))),
  );
  return signCertificate(tbs, ca.caKey) + ca.caPem;
}

// ---- A write-only storage with FileStorage's on-disk layout, without fsync ----

/** Same paths as FileStorage (root + key components), plain writes: only for building throwaway stores. */
class FabricationStorage implements Storage {
  constructor(private readonly root: string) {}
  #path(key: string): string {
    return join(this.root, ...key.split('/'));
  }
  async store(key: string, value: Uint8Array): Promise<void> {
    const path = this.#path(key);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await writeFile(path, value, { mode: 0o600 });
  }
  async load(key: string): Promise<Buffer> {
    try {
      return await readFile(this.#path(key));
    } catch {
      throw new StorageNotFoundError(key);
    }
  }
  async delete(key: string): Promise<void> {
    await rm(this.#path(key), { force: true, recursive: true });
  }
  async exists(): Promise<boolean> {
    throw new Error('not used');
  }
  async list(): Promise<string[]> {
    throw new Error('not used');
  }
  async stat(): Promise<KeyInfo> {
    throw new Error('not used');
  }
  async lock(): Promise<void> {}
  async unlock(): Promise<void> {}
}

/** Writes `count` certificate sets (names benchName(first..first+count-1)) into a FileStorage root. */
export async function fabricateStore(root: string, count: number, options: { first?: number; concurrency?: number; onProgress?: (done: number) => void } = {}): Promise<void> {
  const ca = createBenchCa();
  const storage = new FabricationStorage(root);
  const first = options.first ?? 0;
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = first + next++;
      const name = benchName(i);
      const certPem = leafChainPem(ca, name, i + 1);
      const meta = buildCertificateMeta({ certPem, keyPem: ca.leafKeyPem, issuerKey: BENCH_ISSUER_KEY, names: [name] });
      await saveCertificateSet(storage, { certPem, keyPem: ca.leafKeyPem, meta });
      done++;
      if (done % 10_000 === 0) options.onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 16 }, worker));
}

interface Manifest {
  v: number;
  count: number;
  createdAt: string;
}

/**
 * A FileStorage root under bench/.cache/<label> holding `count` fabricated
 * sets, built on first use (and rebuilt when stale). Do not write to it:
 * copy it, or use fabricateStore on a temporary directory, for benchmarks
 * that renew.
 */
export async function cachedStore(label: string, count: number, log: (line: string) => void = console.log): Promise<string> {
  const root = join(BENCH_CACHE_DIR, label);
  try {
    const manifest = JSON.parse(await readFile(join(root, MANIFEST), 'utf8')) as Manifest;
    if (manifest.v === MANIFEST_VERSION && manifest.count === count && Date.now() - Date.parse(manifest.createdAt) < STORE_MAX_AGE_MS) return root;
  } catch {
    // missing or unreadable: build it
  }
  log(`building ${count} fabricated certificate sets in ${root} (once; cached for later runs)...`);
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true, mode: 0o700 });
  const t0 = performance.now();
  await fabricateStore(root, count, { onProgress: (done) => log(`  ${done} / ${count}`) });
  const manifest: Manifest = { v: MANIFEST_VERSION, count, createdAt: new Date().toISOString() };
  await writeFile(join(root, MANIFEST), JSON.stringify(manifest));
  log(`built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return root;
}

/**
 * The same fabricated certificates in certmagic's (Caddy 2.6) storage layout:
 * certificates/<issuer key>/<name>/<name>.crt|.key|.json, where the issuer key
 * is certmagic's for `acmeCa` (host and path, `:` and `/` as `-`). Caddy then
 * finds them at start-up and obtains nothing.
 */
export async function cachedCaddyStore(label: string, count: number, acmeCa: string, log: (line: string) => void = console.log): Promise<string> {
  const root = join(BENCH_CACHE_DIR, label);
  try {
    const manifest = JSON.parse(await readFile(join(root, MANIFEST), 'utf8')) as Manifest & { acmeCa?: string };
    if (manifest.v === MANIFEST_VERSION && manifest.count === count && manifest.acmeCa === acmeCa && Date.now() - Date.parse(manifest.createdAt) < STORE_MAX_AGE_MS) return root;
  } catch {
    // build it
  }
  log(`building ${count} fabricated certificates in Caddy's layout in ${root} (once)...`);
  await rm(root, { recursive: true, force: true });
  const url = new URL(acmeCa);
  const issuerKey = `${url.host}-${url.pathname.replace(/^\/+|\/+$/g, '').replaceAll('/', '-')}`.toLowerCase().replaceAll(':', '-');
  const ca = createBenchCa();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const name = benchName(i);
      const dir = join(root, 'certificates', issuerKey, name);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await writeFile(join(dir, `${name}.crt`), leafChainPem(ca, name, i + 1), { mode: 0o600 });
      await writeFile(join(dir, `${name}.key`), ca.leafKeyPem, { mode: 0o600 });
      await writeFile(join(dir, `${name}.json`), JSON.stringify({ sans: [name], issuer_data: { url: `${acmeCa}/cert/${i}` } }), { mode: 0o600 });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  await writeFile(join(root, MANIFEST), JSON.stringify({ v: MANIFEST_VERSION, count, createdAt: new Date().toISOString(), acmeCa }));
  return root;
}
