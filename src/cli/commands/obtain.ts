import { PassThrough } from 'node:stream';
import type { Command } from 'commander';
import { formatDate } from '../format.js';
import { commandOf, type CommandHost } from '../command.js';

export function registerObtain(program: Command, host: CommandHost): void {
  program
    .command('obtain')
    .description('obtain a new certificate now for each name (or one for all names with --together) and store it')
    .argument('<names...>', 'domain names, wildcards (*.example.com, needs DNS-01) or IP addresses')
    .option('--together', 'one certificate covering all the names, instead of one per name')
    .option('--json', 'print a JSON array of what was obtained (for scripts)')
    .action(async (...args: unknown[]) => {
      // Loaded here, not at start-up: `certkeeper --help` needs only the definitions above.
      const [{ CertKeeper }, { parseIdentifier }, { keeperOptions, openStorage }, { Progress }] = await Promise.all([
        import('../../manager/keeper.js'),
        import('../../names.js'),
        import('../keeper.js'),
        import('../progress.js'),
      ]);
      const names = args[0] as string[];
      const command = commandOf(args);
      const { io, settings, logger } = host.contextFor(command);
      // Bad names are usage errors, found before any CA is contacted.
      for (const name of names) parseIdentifier(name);
      const flags = command.opts<{ together?: boolean; json?: boolean }>();
      const entries: (string | string[])[] = flags.together ? [names] : names;
      const storage = await openStorage(settings, logger);
      const keeper = new CertKeeper(keeperOptions(settings, storage, logger));
      const progress = new Progress(flags.json ? new PassThrough().resume() : io.stdout, 'obtaining', { quiet: settings.quiet });
      const results: Array<Record<string, unknown>> = [];
      let failed = 0;
      try {
        await Promise.all(
          entries.map(async (entry) => {
            const label = Array.isArray(entry) ? entry.join(', ') : entry;
            progress.start(label);
            try {
              const set = await keeper.obtain(entry, { signal: io.signal });
              results.push({ names: set.meta.names, obtained: true, issuer: set.meta.issuerKey, serialNumber: set.meta.serialNumber, notAfter: set.meta.notAfter });
              progress.done(label, `obtained from ${set.meta.issuerKey}, valid until ${formatDate(new Date(set.meta.notAfter))}`);
            } catch (error) {
              failed++;
              const code = (error as { code?: unknown }).code;
              results.push({ names: Array.isArray(entry) ? entry : [entry], obtained: false, error: { code: typeof code === 'string' ? code : undefined, message: (error as Error).message } });
              progress.fail(label, error);
            }
          }),
        );
      } finally {
        // Notifications (a certificate already expiring) go out, retries included, unless the run was stopped.
        if (!io.signal.aborted) await keeper.notificationsSettled();
        await keeper.close();
        await storage.close?.();
      }
      if (flags.json) io.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      host.finish(failed > 0 ? 1 : 0);
    });
}
