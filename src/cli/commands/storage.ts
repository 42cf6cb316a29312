/** `certkeeper storage copy` (migration between backends) and `storage verify`. */
import type { Command } from 'commander';
import { InvalidOptionError } from '../../errors.js';
import { formatTable } from '../format.js';
import type { CopyReport, FolderResult, SetCheck, SetResult } from '../storage-migration.js';
import { commandOf, type CommandHost } from '../command.js';

interface CopyFlags {
  from: string;
  to: string;
  dryRun?: boolean;
  json?: boolean;
}

export function registerStorage(program: Command, host: CommandHost): void {
  const storage = program.command('storage').description('copy stored certificates between backends, or check what a backend holds');
  storage
    .command('copy')
    .description('copy certificate sets, ACME accounts and the internal CA from one storage to another; never replaces a newer set')
    .requiredOption('--from <dir|url>', 'storage to read (a directory or file:, redis://, postgres://, etcd:// URL)')
    .requiredOption('--to <dir|url>', 'storage to write')
    .option('--dry-run', 'say what would be copied, write nothing')
    .option('--json', 'print the report as JSON (for scripts)')
    .addHelpText('after', '\nExit codes: 0 everything sound was copied or kept; 1 a source set is damaged or a copy did not read back equal.')
    .action(async (...args: unknown[]) => {
      // Loaded here, not at start-up: `certkeeper --help` needs only the definitions above.
      const [{ copyStorage, copyFailed }, { parseStorageUrl, redactStorageUrl, storageFromUrl }] = await Promise.all([
        import('../storage-migration.js'),
        import('../../storage/url.js'),
      ]);
      const command = commandOf(args);
      const { io, logger, settings } = host.contextFor(command);
      const flags = command.opts<CopyFlags>();
      const [fromAt, toAt] = [parseStorageUrl(flags.from, io.cwd, '--from'), parseStorageUrl(flags.to, io.cwd, '--to')];
      if (JSON.stringify(fromAt) === JSON.stringify(toAt)) throw new InvalidOptionError('--to', 'names the same storage as --from');
      const from = await storageFromUrl(flags.from, { logger, cwd: io.cwd, requireExisting: true });
      let report: CopyReport;
      try {
        const to = await storageFromUrl(flags.to, { logger, cwd: io.cwd });
        try {
          report = await copyStorage(from, to, { dryRun: flags.dryRun === true, signal: io.signal });
        } finally {
          await to.close?.();
        }
      } finally {
        await from.close?.();
      }
      const [fromLabel, toLabel] = [redactStorageUrl(flags.from), redactStorageUrl(flags.to)];
      if (flags.json === true) {
        io.stdout.write(`${JSON.stringify({ from: fromLabel, to: toLabel, ...report, summary: summary(report) }, null, 2)}\n`);
      } else {
        io.stdout.write(copyText(report, fromLabel, toLabel, settings.quiet));
      }
      host.finish(copyFailed(report) ? 1 : 0);
    });

  storage
    .command('verify [url]')
    .description('check every stored certificate set (sidecar, key matches certificate, chain parses); default the --storage setting')
    .option('--json', 'print the checks as JSON (for scripts)')
    .addHelpText('after', '\nExit codes: 0 every set is sound; 1 one or more are damaged.')
    .action(async (...args: unknown[]) => {
      const [{ verifyStorage }, { redactStorageUrl, storageFromUrl }] = await Promise.all([import('../storage-migration.js'), import('../../storage/url.js')]);
      const command = commandOf(args);
      const { io, settings, logger } = host.contextFor(command);
      const url = (args[0] as string | undefined) ?? settings.storage;
      const store = await storageFromUrl(url, { logger, cwd: io.cwd, requireExisting: true });
      let checks: SetCheck[];
      try {
        checks = await verifyStorage(store);
      } finally {
        await store.close?.();
      }
      const damaged = checks.filter((c) => !c.ok).length;
      const label = redactStorageUrl(url);
      if (command.opts<{ json?: boolean }>().json === true) {
        io.stdout.write(`${JSON.stringify({ storage: label, sets: checks, damaged }, null, 2)}\n`);
      } else {
        // --quiet: only the damaged sets.
        const shown = settings.quiet ? checks.filter((c) => !c.ok) : checks;
        if (shown.length > 0) {
          io.stdout.write(formatTable(['STATUS', 'NAME', 'ISSUER', 'DETAIL'], shown.map((c) => [c.ok ? 'ok' : 'DAMAGED', c.name, c.issuer, c.ok ? `valid until ${c.notAfter}` : (c.detail ?? '')])));
        }
        if (!settings.quiet) io.stdout.write(`${checks.length} certificate set(s) checked in ${label}: ${damaged === 0 ? 'all sound' : `${damaged} damaged`}.\n`);
      }
      host.finish(damaged > 0 ? 1 : 0);
    });
}

type Counts = Record<string, number>;

function count(results: readonly (SetResult | FolderResult)[]): Counts {
  const counts: Counts = {};
  for (const r of results) counts[r.outcome] = (counts[r.outcome] ?? 0) + 1;
  return counts;
}

function summary(report: CopyReport): { certificates: Counts; accounts: Counts; internalCa: Counts } {
  return { certificates: count(report.certificates), accounts: count(report.accounts), internalCa: count(report.internalCa) };
}

const FAILED_OUTCOMES: readonly string[] = ['damaged', 'verify-failed'];

/** The report as text; with `quiet`, only the items that failed (nothing when none did). */
function copyText(report: CopyReport, from: string, to: string, quiet: boolean): string {
  const head = `${report.dryRun ? 'Dry run, nothing written: ' : ''}from ${from} to ${to}\n`;
  const lines: string[] = [];
  const rows = [
    ...report.internalCa.map((r) => [r.outcome, r.folder, 'internal CA', '']),
    ...report.accounts.map((r) => [r.outcome, r.folder, 'account', '']),
    ...report.certificates.map((r) => [r.outcome, r.name, r.issuer, r.detail ?? '']),
  ].filter((row) => !quiet || FAILED_OUTCOMES.includes(row[0] as string));
  if (quiet) return rows.length > 0 ? formatTable(['OUTCOME', 'NAME', 'KIND/ISSUER', 'DETAIL'], rows) : '';
  const table = rows.length > 0 ? formatTable(['OUTCOME', 'NAME', 'KIND/ISSUER', 'DETAIL'], rows) : '';
  const line = (what: string, counts: Counts): string =>
    `${what}: ${Object.entries(counts).map(([outcome, n]) => `${n} ${outcome}`).join(', ') || 'none'}`;
  const sum = summary(report);
  lines.push(line('Certificate sets', sum.certificates), line('Accounts', sum.accounts), line('Internal CA', sum.internalCa));
  return `${head}${table}${lines.join('\n')}\n`;
}
