/**
 * Writes a certificate's files for servers that read PEM files (nginx,
 * HAProxy, PostgreSQL, ...) into its lineage folder:
 *
 *   cert.pem       the leaf                       (files.mode, default 0644)
 *   chain.pem      the intermediates              (files.mode)
 *   fullchain.pem  leaf + intermediates           (files.mode)
 *   privkey.pem    the private key                (files.keyMode, default 0600)
 *   combined.pem   key + leaf + intermediates, the single file HAProxy's `crt` takes (files.keyMode)
 *
 * Each file is written to a temporary file in the same folder, chowned and
 * chmodded, fsynced, then renamed over the old one (and the folder fsynced),
 * so a reader sees the old file or the new one, never a part. All temporary
 * files are complete before the first rename, which keeps the moment where
 * cert.pem and privkey.pem disagree as short as renames are; deploy hooks run
 * only after the last one.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DeployError } from '../errors.js';
import type { FileSettings } from './config-parts.js';

export const FILE_NAMES = ['cert.pem', 'chain.pem', 'fullchain.pem', 'privkey.pem', 'combined.pem'] as const;
export type FileName = (typeof FILE_NAMES)[number];
export type LineageFiles = Readonly<Record<'cert' | 'chain' | 'fullchain' | 'privkey' | 'combined', string>>;

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function lineageFiles(lineage: string): LineageFiles {
  return Object.freeze({
    cert: join(lineage, 'cert.pem'),
    chain: join(lineage, 'chain.pem'),
    fullchain: join(lineage, 'fullchain.pem'),
    privkey: join(lineage, 'privkey.pem'),
    combined: join(lineage, 'combined.pem'),
  });
}

/** The five files' contents from a stored set (certificate PEM: leaf first, then intermediates). */
export function fileContents(certPem: string, keyPem: string, lineage = ''): Record<FileName, string> {
  const blocks = certPem.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) throw new DeployError('files', lineage, 'the stored certificate holds no PEM certificate');
  const pem = (list: string[]): string => (list.length === 0 ? '' : `${list.join('\n')}\n`);
  const key = `${keyPem.trim()}\n`;
  const fullchain = pem(blocks);
  return {
    'cert.pem': pem(blocks.slice(0, 1)),
    'chain.pem': pem(blocks.slice(1)),
    'fullchain.pem': fullchain,
    'privkey.pem': key,
    'combined.pem': `${key}${fullchain}`,
  };
}

export interface WriteResult {
  /** False when every file already held this content with the configured mode and owner (nothing written). */
  changed: boolean;
  files: LineageFiles;
}

/** Writes the files of one certificate unless they are current; DeployError (stage `files`) on failure. */
export async function writeCertificateFiles(lineage: string, certPem: string, keyPem: string, settings: FileSettings): Promise<WriteResult> {
  const files = lineageFiles(lineage);
  const contents = fileContents(certPem, keyPem, lineage);
  const modeOf = (name: FileName): number => (name === 'privkey.pem' || name === 'combined.pem' ? settings.keyMode : settings.mode);
  try {
    if (await allCurrent(lineage, contents, modeOf, settings)) return { changed: false, files };
    await mkdir(lineage, { recursive: true, mode: 0o755 });
    const temps: Array<[string, string]> = [];
    try {
      for (const name of FILE_NAMES) {
        const temp = join(lineage, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
        temps.push([temp, join(lineage, name)]);
        await writeDurably(temp, contents[name], modeOf(name), settings);
      }
      for (const [temp, target] of temps) await rename(temp, target);
    } catch (error) {
      await Promise.all(temps.map(([temp]) => rm(temp, { force: true })));
      throw error;
    }
    await syncFolder(lineage);
    return { changed: true, files };
  } catch (error) {
    if (error instanceof DeployError) throw error;
    const { code, message } = error as NodeJS.ErrnoException;
    throw new DeployError('files', lineage, `cannot write the certificate files in ${lineage}: ${code ?? message}`, { cause: error });
  }
}

async function writeDurably(path: string, text: string, mode: number, settings: FileSettings): Promise<void> {
  // Created private, so no other user can open the key before its final owner and mode are set.
  const handle = await open(path, 'wx', 0o600);
  try {
    await handle.writeFile(text);
    if (settings.owner !== undefined || settings.group !== undefined) await handle.chown(settings.owner ?? -1, settings.group ?? -1);
    // chmod after chown: chown clears set-id bits, and the umask does not apply to chmod.
    await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function syncFolder(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on a folder; the renames are still atomic.
  } finally {
    await handle.close();
  }
}

async function allCurrent(lineage: string, contents: Record<FileName, string>, modeOf: (name: FileName) => number, settings: FileSettings): Promise<boolean> {
  for (const name of FILE_NAMES) {
    const path = join(lineage, name);
    try {
      const [info, text] = await Promise.all([stat(path), readFile(path, 'utf8')]);
      if (text !== contents[name] || (info.mode & 0o7777) !== modeOf(name)) return false;
      if (settings.owner !== undefined && info.uid !== settings.owner) return false;
      if (settings.group !== undefined && info.gid !== settings.group) return false;
    } catch {
      return false;
    }
  }
  return true;
}
