/**
 * `renew --deploy-hook "<program> <args>"` (and `--files <dir>`): after a
 * certificate was renewed, its files are written as the daemon writes them
 * (with --files) and the hooks run as the daemon runs them (daemon/hooks.ts):
 * no shell, RENEWED_DOMAINS / RENEWED_LINEAGE and CERTKEEPER_* in the
 * environment, a timeout, redacted output, retries with backoff, and no
 * second renewal.
 */
import { join } from 'node:path';
import { systemClock } from '../clock.js';
import { InvalidOptionError } from '../errors.js';
import type { Logger } from '../logger.js';
import { loadCertificateSet } from '../storage/certificates.js';
import { safeKeyComponent } from '../storage/layout.js';
import type { Storage } from '../storage/types.js';
import { resolveHook, type DeployHookConfig } from '../daemon/config-parts.js';
import { writeCertificateFiles } from '../daemon/files.js';
import { runHookWithRetries, type HookOutcome } from '../daemon/hooks.js';
import { DEFAULT_CERT_FILE_MODE, DEFAULT_KEY_FILE_MODE } from '../defaults.js';
import { splitCommand } from './split-command.js';
export { splitCommand };


export function deployHooksFrom(values: readonly string[] | undefined): DeployHookConfig[] {
  return (values ?? []).map((text, index) => resolveHook({ command: splitCommand(text) }, `--deploy-hook[${index}]`));
}

export interface RenewedCertificate {
  names: string[];
  issuer: string;
  certName: string;
}

/** Files (when `filesDir` is set), then every hook in order; the outcomes of the hooks. */
export async function deployRenewed(
  cert: RenewedCertificate,
  options: { storage: Storage; hooks: readonly DeployHookConfig[]; filesDir: string | undefined; logger: Logger; signal: AbortSignal },
): Promise<HookOutcome[]> {
  const set = await loadCertificateSet(options.storage, cert.issuer, cert.certName);
  let lineage: string | undefined;
  let files;
  if (options.filesDir !== undefined) {
    lineage = join(options.filesDir, safeKeyComponent(cert.names[0] as string));
    ({ files } = await writeCertificateFiles(lineage, set.certPem, set.keyPem, {
      directory: options.filesDir,
      owner: undefined,
      group: undefined,
      mode: DEFAULT_CERT_FILE_MODE,
      keyMode: DEFAULT_KEY_FILE_MODE,
    }));
  }
  const deployed = { names: cert.names, lineage, files, serialNumber: set.meta.serialNumber, notAfter: new Date(set.meta.notAfter), issuer: cert.issuer, renewal: true };
  const outcomes: HookOutcome[] = [];
  for (const hook of options.hooks) {
    outcomes.push(await runHookWithRetries(hook, deployed, { clock: systemClock, logger: options.logger, signal: options.signal }));
  }
  return outcomes;
}
