import { resolve } from 'node:path';
import { Writable } from 'node:stream';
import type { Command } from 'commander';
import { InvalidOptionError } from '../../errors.js';
import type { CertKeeper } from '../../manager/keeper.js';
import { parseIdentifier } from '../../names.js';
import { formatDate } from '../format.js';
import type { StoredCertificate } from '../inventory.js';
import { commandOf, type CommandHost } from '../command.js';

export function registerRenew(program: Command, host: CommandHost): void {
  program
    .command('renew')
    .description("renew stored certificates of the configured issuer that are due (all of them, or the names given)")
    .argument('[names...]', 'names whose certificates to renew (default: every stored certificate of the issuer)')
    .option('--force', 'renew even if not due, ignoring the failure backoff')
    .option('--deploy-hook <command>', 'run after each renewal (no shell; RENEWED_DOMAINS, RENEWED_LINEAGE and CERTKEEPER_* in its environment); repeatable', collect, [])
    .option('--files <dir>', "write each renewed certificate's cert.pem, chain.pem, fullchain.pem, privkey.pem, combined.pem to <dir>/<name>/ before the hooks")
    .option('--json', 'print a JSON array of what was done for each certificate (for scripts)')
    .action(async (...args: unknown[]) => {
      // Loaded here, not at start-up: `certkeeper --help` needs only the definitions above.
      const [{ CertKeeper }, { listStoredCertificates }, { configuredIssuerKey, keeperOptions, openStorage, storageLabel }, { Progress }, { deployHooksFrom, deployRenewed }] = await Promise.all([
        import('../../manager/keeper.js'),
        import('../inventory.js'),
        import('../keeper.js'),
        import('../progress.js'),
        import('../deploy-hook.js'),
      ]);
      const requested = (args[0] as string[] | undefined) ?? [];
      const command = commandOf(args);
      const { io, settings, logger } = host.contextFor(command);
      const flags = command.opts<RenewFlags>();
      const force = flags.force === true;
      const hooks = deployHooksFrom(flags.deployHook);
      const filesDir = flags.files !== undefined ? resolve(io.cwd, flags.files) : undefined;
      const storage = await openStorage(settings, logger, { existing: true });
      const issuerKey = configuredIssuerKey(settings);
      let keeper: CertKeeper | undefined;
      const results: RenewResult[] = [];
      try {
        const stored = (await listStoredCertificates(storage, { now: Date.now() })).filter((c) => c.issuer === issuerKey);
        const targets = selectTargets(stored, requested, issuerKey);
        if (targets.length === 0) {
          if (flags.json) io.stdout.write('[]\n');
          else if (!settings.quiet) io.stdout.write(`No stored certificates of ${issuerKey} in ${storageLabel(settings)}.\n`);
          host.finish(0);
          return;
        }
        keeper = new CertKeeper(keeperOptions(settings, storage, logger));
        const progress = new Progress(flags.json ? new NullOutput() : io.stdout, force ? 'renewing' : 'checking', { quiet: settings.quiet });
        await Promise.all(
          targets.map(async (target) => {
            const label = target.names.join(', ');
            const result: RenewResult = { names: target.names, action: 'failed', serialNumber: target.serialNumber, notAfter: undefined, nextRenewalAt: undefined, error: undefined, hooks: [] };
            results.push(result);
            progress.start(label);
            try {
              // Loading serves the stored set; a due one starts renewing, and renew() joins that attempt.
              await (keeper as CertKeeper).manageSync([target.names]);
              const status = await (keeper as CertKeeper).renew(target.names[0] as string, { force, signal: io.signal });
              Object.assign(result, { serialNumber: status.serialNumber, notAfter: status.notAfter?.toISOString(), nextRenewalAt: status.nextRenewalAt?.toISOString() });
              if (status.serialNumber === target.serialNumber) {
                result.action = 'not_due';
                progress.skip(label, `not due; next renewal ${formatDate(status.nextRenewalAt)}`);
                return;
              }
              result.action = 'renewed';
              progress.done(label, `renewed, valid until ${formatDate(status.notAfter)}`);
              if (hooks.length === 0 && filesDir === undefined) return;
              const outcomes = await deployRenewed(
                { names: target.names, issuer: status.issuer ?? target.issuer, certName: target.certName },
                { storage, hooks, filesDir, logger, signal: io.signal },
              );
              result.hooks = outcomes.map((o) => ({ command: [...o.hook.command], ok: o.ok, attempts: o.attempts, error: o.error ? errorJson(o.error) : undefined }));
              for (const o of outcomes) if (!o.ok) progress.fail(label, o.error);
              if (outcomes.some((o) => !o.ok)) result.action = 'deploy_failed';
              else if (outcomes.length > 0) progress.done(label, `deploy hook${outcomes.length > 1 ? 's' : ''} succeeded`);
            } catch (error) {
              result.action = result.action === 'renewed' ? 'deploy_failed' : 'failed';
              result.error = errorJson(error);
              progress.fail(label, error);
            }
          }),
        );
      } finally {
        // Notifications (renewed, failing, expiring) go out, retries included, unless the run was stopped.
        if (!io.signal.aborted) await keeper?.notificationsSettled();
        await keeper?.close();
        await storage.close?.();
      }
      if (flags.json) io.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      host.finish(results.some((r) => r.action === 'failed' || r.action === 'deploy_failed') ? 1 : 0);
    });
}

interface RenewFlags {
  force?: boolean;
  deployHook?: string[];
  files?: string;
  json?: boolean;
}

/** One entry of `renew --json`. */
interface RenewResult {
  names: string[];
  /** renewed, not_due, failed (the renewal), deploy_failed (renewed, but a hook or the files failed). */
  action: 'renewed' | 'not_due' | 'failed' | 'deploy_failed';
  serialNumber: string | undefined;
  notAfter: string | undefined;
  nextRenewalAt: string | undefined;
  error: { code: string | undefined; message: string } | undefined;
  hooks: Array<{ command: string[]; ok: boolean; attempts: number; error: { code: string | undefined; message: string } | undefined }>;
}

function errorJson(error: unknown): { code: string | undefined; message: string } {
  const code = (error as { code?: unknown }).code;
  return { code: typeof code === 'string' ? code : undefined, message: error instanceof Error ? error.message : String(error) };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Progress goes nowhere when the JSON document is the output. */
class NullOutput extends Writable {
  override _write(_chunk: unknown, _encoding: BufferEncoding, callback: () => void): void {
    callback();
  }
}

function selectTargets(stored: StoredCertificate[], requested: string[], issuerKey: string): StoredCertificate[] {
  if (requested.length === 0) return stored;
  const targets = new Map<string, StoredCertificate>();
  for (const input of requested) {
    const name = parseIdentifier(input).value;
    const match = stored.find((c) => c.names.includes(name));
    if (!match) throw new InvalidOptionError('names', `no stored certificate of ${issuerKey} covers ${name}; use "certkeeper obtain ${name}"`);
    targets.set(match.certName, match);
  }
  return [...targets.values()];
}
