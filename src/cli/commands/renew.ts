import type { Command } from 'commander';
import { InvalidOptionError } from '../../errors.js';
import type { CertKeeper } from '../../manager/keeper.js';
import { parseIdentifier } from '../../names.js';
import { formatDate } from '../format.js';
import type { StoredCertificate } from '../inventory.js';
import { commandOf, type Registry } from './index.js';

export function registerRenew(program: Command, registry: Registry): void {
  program
    .command('renew')
    .description("renew stored certificates of the configured issuer that are due (all of them, or the names given)")
    .argument('[names...]', 'names whose certificates to renew (default: every stored certificate of the issuer)')
    .option('--force', 'renew even if not due, ignoring the failure backoff')
    .action(async (...args: unknown[]) => {
      // Loaded here, not at start-up: `certkeeper --help` needs only the definitions above.
      const [{ CertKeeper }, { listStoredCertificates }, { configuredIssuerKey, keeperOptions, openStorage }, { Progress }] = await Promise.all([
        import('../../manager/keeper.js'),
        import('../inventory.js'),
        import('../keeper.js'),
        import('../progress.js'),
      ]);
      const requested = (args[0] as string[] | undefined) ?? [];
      const command = commandOf(args);
      const { io, settings, logger } = registry.contextFor(command);
      const force = command.opts<{ force?: boolean }>().force === true;
      const storage = openStorage(settings, logger);
      const issuerKey = configuredIssuerKey(settings);
      let keeper: CertKeeper | undefined;
      let failed = 0;
      try {
        const stored = (await listStoredCertificates(storage, { now: Date.now() })).filter((c) => c.issuer === issuerKey);
        const targets = selectTargets(stored, requested, issuerKey);
        if (targets.length === 0) {
          io.stdout.write(`No stored certificates of ${issuerKey} in ${settings.storage}.\n`);
          registry.finish(0);
          return;
        }
        keeper = new CertKeeper(keeperOptions(settings, storage, logger));
        const progress = new Progress(io.stdout, force ? 'renewing' : 'checking');
        await Promise.all(
          targets.map(async (target) => {
            const label = target.names.join(', ');
            progress.start(label);
            try {
              // Loading serves the stored set; a due one starts renewing, and renew() joins that attempt.
              await (keeper as CertKeeper).manageSync([target.names]);
              const status = await (keeper as CertKeeper).renew(target.names[0] as string, { force, signal: io.signal });
              if (status.serialNumber !== target.serialNumber) progress.done(label, `renewed, valid until ${formatDate(status.notAfter)}`);
              else progress.skip(label, `not due; next renewal ${formatDate(status.nextRenewalAt)}`);
            } catch (error) {
              failed++;
              progress.fail(label, error);
            }
          }),
        );
      } finally {
        await keeper?.close();
        await storage.close();
      }
      registry.finish(failed > 0 ? 1 : 0);
    });
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
