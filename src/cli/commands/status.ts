import type { Command } from 'commander';
import { InvalidOptionError } from '../../errors.js';
import { formatDate } from '../format.js';
import { storedJson, storedStatusEntry } from '../status-entry.js';
import { commandOf, type CommandHost } from '../command.js';

export function registerStatus(program: Command, host: CommandHost): void {
  program
    .command('status')
    .description('show the stored certificate covering <name>: validity, next renewal and why, last error (the status page fields)')
    .argument('<name>', 'a name the certificate covers')
    .option('--json', 'print a JSON object (for scripts)')
    .action(async (...args: unknown[]) => {
      // Loaded here, not at start-up: `certkeeper --help` needs only the definitions above.
      const [{ findStoredCertificates }, { openStorage, storageLabel }] = await Promise.all([import('../inventory.js'), import('../keeper.js')]);
      const name = args[0] as string;
      const command = commandOf(args);
      const { io, settings, logger, out } = host.contextFor(command);
      const storage = await openStorage(settings, logger, { existing: true });
      const now = Date.now();
      let found;
      try {
        [found] = await findStoredCertificates(storage, name, { now });
      } finally {
        await storage.close?.();
      }
      if (!found) throw new InvalidOptionError('name', `no stored certificate covers ${name} in ${storageLabel(settings)}`);
      if (command.opts<{ json?: boolean }>().json) {
        io.stdout.write(`${JSON.stringify(storedJson(found, now), null, 2)}\n`);
      } else {
        const e = storedStatusEntry(found, now);
        const lines: [string, string][] = [
          ['names', e.names.join(', ')],
          ['state', e.state],
          ['issuer', e.issuer ?? '-'],
          ['profile', e.profile ?? '-'],
          ['not before', formatDate(found.notBefore)],
          ['not after', `${formatDate(found.notAfter)} (${found.daysLeft} days left)`],
          ['next renewal', `${formatDate(found.nextRenewalAt)} (${e.nextRenewalReason ?? '-'})`],
          ...(e.ariWindow ? [['ARI window', `${formatDate(new Date(e.ariWindow.start))} - ${formatDate(new Date(e.ariWindow.end))}`] as [string, string]] : []),
          ['last error', e.lastError ? `${e.lastError.code ?? ''}: ${e.lastError.message} (${e.lastError.at}, ${e.failures} in a row)` : '-'],
        ];
        out.write(lines.map(([k, v]) => `${`${k}:`.padEnd(14)}${v}`).join('\n') + '\n');
      }
      host.finish(0);
    });
}
