import type { Command } from 'commander';
import { formatDate, formatTable, oneLine } from '../format.js';
import type { StoredCertificate } from '../inventory.js';
import { storedJson } from '../status-entry.js';
import { commandOf, type CommandHost } from '../command.js';

export function registerList(program: Command, host: CommandHost): void {
  program
    .command('list')
    .description('list stored certificates: names, issuer, profile, not after, days left, next renewal, last error')
    .option('--json', 'print a JSON array (for scripts)')
    .action(async (...args: unknown[]) => {
      // Loaded here, not at start-up: `certkeeper --help` needs only the definitions above.
      const [{ listStoredCertificates }, { openStorage, storageLabel }] = await Promise.all([import('../inventory.js'), import('../keeper.js')]);
      const command = commandOf(args);
      const { io, settings, logger, out } = host.contextFor(command);
      const storage = await openStorage(settings, logger, { existing: true });
      let certificates: StoredCertificate[];
      try {
        certificates = await listStoredCertificates(storage, { now: Date.now() });
      } finally {
        await storage.close?.();
      }
      if (command.opts<{ json?: boolean }>().json) {
        const now = Date.now();
        io.stdout.write(`${JSON.stringify(certificates.map((c) => storedJson(c, now)), null, 2)}\n`);
      } else if (certificates.length === 0) {
        out.write(`No certificates in ${storageLabel(settings)}.\n`);
      } else {
        out.write(
          formatTable(
            ['NAMES', 'ISSUER', 'PROFILE', 'NOT AFTER', 'DAYS LEFT', 'NEXT RENEWAL', 'LAST ERROR'],
            certificates.map((c) => [
              c.names.join(','),
              c.issuer,
              c.profile ?? '-',
              formatDate(c.notAfter),
              String(c.daysLeft),
              formatDate(c.nextRenewalAt),
              c.lastError ? oneLine(c.lastError.code ? `${c.lastError.code}: ${c.lastError.message}` : c.lastError.message, 60) : '-',
            ]),
          ),
        );
      }
      host.finish(0);
    });
}
