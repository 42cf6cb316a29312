import type { Command } from 'commander';
import { formatDate, formatTable, oneLine } from '../format.js';
import type { StoredCertificate } from '../inventory.js';
import { storedStatusEntry } from '../status-entry.js';
import { commandOf, type Registry } from './index.js';

export function registerList(program: Command, registry: Registry): void {
  program
    .command('list')
    .description('list stored certificates: names, issuer, not after, days left, next renewal, last error')
    .option('--json', 'print a JSON array (for scripts)')
    .action(async (...args: unknown[]) => {
      // Loaded here, not at start-up: `certkeeper --help` needs only the definitions above.
      const [{ listStoredCertificates }, { openStorage, storageLabel }] = await Promise.all([import('../inventory.js'), import('../keeper.js')]);
      const command = commandOf(args);
      const { io, settings, logger } = registry.contextFor(command);
      const storage = await openStorage(settings, logger, { existing: true });
      let certificates: StoredCertificate[];
      try {
        certificates = await listStoredCertificates(storage, { now: Date.now() });
      } finally {
        await storage.close?.();
      }
      if (command.opts<{ json?: boolean }>().json) {
        const now = Date.now();
        io.stdout.write(`${JSON.stringify(certificates.map((c) => toJson(c, now)), null, 2)}\n`);
      } else if (certificates.length === 0) {
        io.stdout.write(`No certificates in ${storageLabel(settings)}.\n`);
      } else {
        io.stdout.write(
          formatTable(
            ['NAMES', 'ISSUER', 'NOT AFTER', 'DAYS LEFT', 'NEXT RENEWAL', 'LAST ERROR'],
            certificates.map((c) => [
              c.names.join(','),
              c.issuer,
              formatDate(c.notAfter),
              String(c.daysLeft),
              formatDate(c.nextRenewalAt),
              c.lastError ? oneLine(c.lastError.code ? `${c.lastError.code}: ${c.lastError.message}` : c.lastError.message, 60) : '-',
            ]),
          ),
        );
      }
      registry.finish(0);
    });
}

/** The JSON shape of `list --json` (stable: scripts parse it); the status page's fields, plus the storage name, days left and key type. */
export function toJson(c: StoredCertificate, now = Date.now()): Record<string, unknown> {
  return {
    ...storedStatusEntry(c, now),
    name: c.certName,
    names: c.names,
    issuer: c.issuer,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    daysLeft: c.daysLeft,
    nextRenewalAt: c.nextRenewalAt.toISOString(),
    serialNumber: c.serialNumber,
    keyType: c.keyType,
    failures: c.failures,
    lastError: c.lastError ?? null,
  };
}
