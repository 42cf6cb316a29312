import { Option, type Command } from 'commander';
import { portText } from '../../validate.js';
import { formatDate } from '../format.js';
import { writeLine } from '../io.js';
import { DEFAULT_DEMO_PORT, defaultDemoStorageRoot } from '../settings.js';
import { commandOf, type CommandHost } from '../command.js';

export function registerDemo(program: Command, host: CommandHost): void {
  program
    .command('demo')
    .description('serve https://localhost:8443 with a certificate from the internal CA (no network, no root); Ctrl-C stops it')
    .addOption(new Option('--port <port>', 'HTTPS port on 127.0.0.1 and ::1').default(String(DEFAULT_DEMO_PORT)))
    .addHelpText('after', '\nStorage defaults to $XDG_DATA_HOME/certkeeper-demo (~/.local/share/certkeeper-demo); --storage overrides it.')
    .action(async (...args: unknown[]) => {
      // Loaded here, not at start-up: `certkeeper --help` needs only the definitions above.
      const { startDemo } = await import('../demo.js');
      const command = commandOf(args);
      const { io, settings, logger } = host.contextFor(command, { storage: defaultDemoStorageRoot(host.io.env) });
      const portFlag = command.opts<{ port: string }>().port;
      const port = portText(portFlag, '--port') as number;
      if (io.signal.aborted) return host.finish(0);
      const demo = await startDemo({
        port,
        storageRoot: settings.storage,
        logger,
        onRenewed: (notAfter) => writeLine(io.stdout, `${new Date().toISOString()} certificate renewed by the scheduler; valid until ${formatDate(notAfter)}`),
      });
      writeLine(io.stdout, `certkeeper demo: serving ${demo.url} (storage ${settings.storage})`);
      writeLine(io.stdout, `Certificate for localhost, 127.0.0.1 and ::1 from the internal CA, valid until ${formatDate(demo.notAfter())}; renewal scheduled ${formatDate(demo.nextRenewalAt())}.`);
      writeLine(io.stdout, `Root certificate: ${demo.rootCertificatePath}`);
      writeLine(io.stdout, 'Verify it with:');
      writeLine(io.stdout, `  ${demo.curlCommand}`);
      writeLine(io.stdout, 'Press Ctrl-C to stop.');
      await new Promise<void>((resolve) => {
        if (io.signal.aborted) resolve();
        else io.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await demo.close();
      writeLine(io.stdout, 'certkeeper demo: stopped');
      host.finish(0);
    });
}
