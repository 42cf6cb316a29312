import type { Command } from 'commander';
import { formatDate } from '../format.js';
import { commandOf, type Registry } from './index.js';

export function registerObtain(program: Command, registry: Registry): void {
  program
    .command('obtain')
    .description('obtain a new certificate now for each name (or one for all names with --together) and store it')
    .argument('<names...>', 'domain names, wildcards (*.example.com, needs DNS-01) or IP addresses')
    .option('--together', 'one certificate covering all the names, instead of one per name')
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
      const { io, settings, logger } = registry.contextFor(command);
      // Bad names are usage errors, found before any CA is contacted.
      for (const name of names) parseIdentifier(name);
      const entries: (string | string[])[] = command.opts<{ together?: boolean }>().together ? [names] : names;
      const storage = openStorage(settings, logger);
      const keeper = new CertKeeper(keeperOptions(settings, storage, logger));
      const progress = new Progress(io.stdout, 'obtaining');
      let failed = 0;
      try {
        await Promise.all(
          entries.map(async (entry) => {
            const label = Array.isArray(entry) ? entry.join(', ') : entry;
            progress.start(label);
            try {
              const set = await keeper.obtain(entry, { signal: io.signal });
              progress.done(label, `obtained from ${set.meta.issuerKey}, valid until ${formatDate(new Date(set.meta.notAfter))}`);
            } catch (error) {
              failed++;
              progress.fail(label, error);
            }
          }),
        );
      } finally {
        await keeper.close();
        await storage.close();
      }
      registry.finish(failed > 0 ? 1 : 0);
    });
}
