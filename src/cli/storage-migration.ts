/**
 * `certkeeper storage copy` and `storage verify`: moving certificate sets,
 * ACME accounts and the internal CA from one backend to another, and checking
 * what a backend holds.
 *
 * A set is verified before it is copied (sidecar fingerprints, key matches the
 * leaf: loadCertificateSet; the whole chain parses and links: buildMaterial)
 * and read back after. It is written only when the target holds no set for the
 * name, a damaged one, or an older one (by the leaf's notAfter, then
 * notBefore), and under the name's certificate lock, re-checked inside it, so
 * a fleet renewing on the target at the same time is never overwritten.
 * Accounts and CA folders are copied whole and only where the target has none:
 * replacing a CA would untrust what it issued, replacing an account key would
 * orphan the target's account.
 */
import { CertificateInvalidError, StorageNotFoundError } from '../errors.js';
import { loadCertificateSet, saveCertificateSet, listCertificateNames, type CertificateRef, type CertificateSet } from '../storage/certificates.js';
import { certificateLockName, safeKeyComponent } from '../storage/layout.js';
import { hasLockLeaseCheck, type Storage } from '../storage/types.js';
import { buildMaterial } from '../tls/certificate-material.js';

export type SetOutcome = 'copied' | 'would-copy' | 'unchanged' | 'target-newer' | 'damaged' | 'verify-failed';
export type FolderOutcome = 'copied' | 'would-copy' | 'unchanged' | 'target-differs' | 'verify-failed';

export interface SetResult {
  issuer: string;
  name: string;
  outcome: SetOutcome;
  /** Why a set is damaged or kept, or that a damaged target set was replaced. */
  detail?: string;
}

export interface FolderResult {
  /** The folder copied as one unit: `acme/<issuer>/users/<user>` or `internal/<ca>`. */
  folder: string;
  outcome: FolderOutcome;
}

export interface CopyReport {
  dryRun: boolean;
  certificates: SetResult[];
  accounts: FolderResult[];
  internalCa: FolderResult[];
}

export interface SetCheck {
  issuer: string;
  name: string;
  ok: boolean;
  /** Why it is damaged. */
  detail?: string;
  notAfter?: string;
}

/** Every stored set, each checked as `storage copy` checks what it copies. Folders holding no set at all are left out. */
export async function verifyStorage(storage: Storage): Promise<SetCheck[]> {
  const checks: SetCheck[] = [];
  for (const ref of await listCertificateNames(storage)) {
    const found = await checkedSet(storage, ref);
    if (found === undefined) continue;
    checks.push(
      'damage' in found
        ? { issuer: ref.issuerKey, name: ref.name, ok: false, detail: found.damage }
        : { issuer: ref.issuerKey, name: ref.name, ok: true, notAfter: found.set.meta.notAfter },
    );
  }
  return checks;
}

export async function copyStorage(from: Storage, to: Storage, options: { dryRun?: boolean | undefined; signal?: AbortSignal | undefined } = {}): Promise<CopyReport> {
  const dryRun = options.dryRun === true;
  const report: CopyReport = { dryRun, certificates: [], accounts: [], internalCa: [] };
  // The CA and accounts first: a set copied without its issuer's CA could not be renewed by the target's fleet.
  for (const folder of await internalCaFolders(from)) report.internalCa.push(await copyFolder(from, to, folder, dryRun));
  for (const folder of await accountFolders(from)) report.accounts.push(await copyFolder(from, to, folder, dryRun));
  for (const ref of await listCertificateNames(from)) {
    const result = await copySet(from, to, ref, dryRun, options.signal);
    if (result !== undefined) report.certificates.push(result);
  }
  return report;
}

/** A report entry counts as a failure when something could not be copied as it is. */
export function copyFailed(report: CopyReport): boolean {
  return (
    report.certificates.some((r) => r.outcome === 'damaged' || r.outcome === 'verify-failed') ||
    [...report.accounts, ...report.internalCa].some((r) => r.outcome === 'verify-failed')
  );
}

type Checked = { set: CertificateSet } | { damage: string };

/** The set, verified; its damage when it is not sound; undefined when the folder holds no set. */
async function checkedSet(storage: Storage, ref: CertificateRef): Promise<Checked | undefined> {
  let set: CertificateSet;
  try {
    set = await loadCertificateSet(storage, ref.issuerKey, ref.name);
    buildMaterial(set.certPem, set.keyPem, { checkValidity: false });
  } catch (error) {
    if (error instanceof StorageNotFoundError) return undefined;
    if (error instanceof CertificateInvalidError) return { damage: error.message };
    throw error;
  }
  const primary = set.meta.names[0] ?? '';
  if (safeKeyComponent(primary) !== ref.name || set.meta.issuerKey !== ref.issuerKey) {
    return { damage: `its sidecar names ${set.meta.issuerKey}/${primary}, not the folder it is stored in` };
  }
  return { set };
}

async function copySet(from: Storage, to: Storage, ref: CertificateRef, dryRun: boolean, signal: AbortSignal | undefined): Promise<SetResult | undefined> {
  const base = { issuer: ref.issuerKey, name: ref.name };
  const source = await checkedSet(from, ref);
  if (source === undefined) return undefined;
  if ('damage' in source) return { ...base, outcome: 'damaged', detail: source.damage };
  const decide = async (): Promise<SetResult | { write: true; detail?: string }> => {
    const target = await checkedSet(to, ref);
    if (target === undefined) return { write: true };
    if ('damage' in target) return { write: true, detail: `replaced a damaged set on the target (${target.damage})` };
    if (target.set.meta.sha256.cert === source.set.meta.sha256.cert && target.set.meta.sha256.key === source.set.meta.sha256.key) {
      return { ...base, outcome: 'unchanged' };
    }
    if (!isNewer(source.set, target.set)) {
      return { ...base, outcome: 'target-newer', detail: `the target's certificate is valid until ${target.set.meta.notAfter}, this one until ${source.set.meta.notAfter}` };
    }
    return { write: true, detail: `replaced an older set (valid until ${target.set.meta.notAfter})` };
  };
  if (dryRun) {
    const decision = await decide();
    return 'write' in decision ? { ...base, outcome: 'would-copy', ...(decision.detail ? { detail: decision.detail } : {}) } : decision;
  }
  const lock = certificateLockName(source.set.meta.names[0] as string);
  await to.lock(lock, { signal });
  try {
    const decision = await decide();
    if (!('write' in decision)) return decision;
    if (hasLockLeaseCheck(to)) await to.assertLockHeld(lock);
    await saveCertificateSet(to, source.set);
    const back = await checkedSet(to, ref);
    if (back === undefined || 'damage' in back || back.set.meta.sha256.cert !== source.set.meta.sha256.cert || back.set.meta.sha256.key !== source.set.meta.sha256.key) {
      return { ...base, outcome: 'verify-failed', detail: back !== undefined && 'damage' in back ? back.damage : 'the set read back differs from the one written' };
    }
    return { ...base, outcome: 'copied', ...(decision.detail ? { detail: decision.detail } : {}) };
  } finally {
    await to.unlock(lock);
  }
}

/** Newer means a later notAfter, or the same notAfter and a later notBefore. */
function isNewer(a: CertificateSet, b: CertificateSet): boolean {
  const [aAfter, bAfter] = [Date.parse(a.meta.notAfter), Date.parse(b.meta.notAfter)];
  if (aAfter !== bAfter) return aAfter > bAfter;
  return Date.parse(a.meta.notBefore) > Date.parse(b.meta.notBefore);
}

async function copyFolder(from: Storage, to: Storage, folder: string, dryRun: boolean): Promise<FolderResult> {
  const keys = await valueKeys(from, folder);
  const values = new Map<string, Buffer>();
  for (const key of keys) {
    const value = await loadIfExists(from, key);
    if (value !== undefined) values.set(key, value);
  }
  const existing = await valueKeys(to, folder);
  if (existing.length > 0) {
    const same = existing.length === values.size && (await Promise.all([...values].map(async ([key, value]) => (await loadIfExists(to, key))?.equals(value) === true))).every(Boolean);
    return { folder, outcome: same ? 'unchanged' : 'target-differs' };
  }
  if (dryRun) return { folder, outcome: 'would-copy' };
  for (const [key, value] of values) await to.store(key, value);
  for (const [key, value] of values) {
    if ((await loadIfExists(to, key))?.equals(value) !== true) return { folder, outcome: 'verify-failed' };
  }
  return { folder, outcome: 'copied' };
}

/** The keys holding values below a folder (a recursive list names the folders in between too). */
async function valueKeys(storage: Storage, folder: string): Promise<string[]> {
  const keys: string[] = [];
  for (const key of await listOrEmpty(storage, folder, true)) {
    try {
      if ((await storage.stat(key)).isTerminal) keys.push(key);
    } catch (error) {
      if (!(error instanceof StorageNotFoundError)) throw error;
    }
  }
  return keys;
}

async function internalCaFolders(storage: Storage): Promise<string[]> {
  return listOrEmpty(storage, 'internal', false);
}

/** acme/<issuer>/users/<user> for every issuer; challenge tokens are short-lived and stay behind. */
async function accountFolders(storage: Storage): Promise<string[]> {
  const folders: string[] = [];
  for (const issuer of await listOrEmpty(storage, 'acme', false)) folders.push(...(await listOrEmpty(storage, `${issuer}/users`, false)));
  return folders;
}

async function listOrEmpty(storage: Storage, prefix: string, recursive: boolean): Promise<string[]> {
  try {
    return await storage.list(prefix, recursive);
  } catch (error) {
    if (error instanceof StorageNotFoundError) return [];
    throw error;
  }
}

async function loadIfExists(storage: Storage, key: string): Promise<Buffer | undefined> {
  try {
    return await storage.load(key);
  } catch (error) {
    if (error instanceof StorageNotFoundError) return undefined;
    throw error;
  }
}
