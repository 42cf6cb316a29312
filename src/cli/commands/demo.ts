import { Option, type Command } from 'commander';
import { InvalidOptionError } from '../../errors.js';
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
    .option('--json', 'one JSON line when serving and one per renewal, instead of the text')
    .addHelpText('after', '\nStorage defaults to $XDG_DATA_HOME/certkeeper-demo (~/.local/share/certkeeper-demo); --storage overrides it.')
    .action(async (...args: unknown[]) => {
      // Loaded here, not at start-up: `certkeeper --help` needs only the definitions above.
      const [{ startDemo }, { isRemoteStorageUrl }] = await Promise.all([import('../demo.js'), import('../../storage/url.js')]);
      const command = commandOf(args);
      const { io, settings, logger, out } = host.contextFor(command, { storage: defaultDemoStorageRoot(host.io.env) });
      // The demo prints the path of its root certificate for curl: it needs files.
      if (isRemoteStorageUrl(settings.storage)) throw new InvalidOptionError('storage', 'the demo keeps its certificates in a directory: give --storage a directory');
      const portFlag = command.opts<{ port: string }>().port;
      const port = portText(portFlag, '--port') as number;
      if (io.signal.aborted) return host.finish(0);
      const json = command.opts<{ json?: boolean }>().json === true;
      const demo = await startDemo({
        port,
        storageRoot: settings.storage,
        logger,
        onRenewed: (notAfter) =>
          json
            ? writeLine(io.stdout, JSON.stringify({ event: 'renewed', notAfter: notAfter.toISOString() }))
            : writeLine(out, `${new Date().toISOString()} certificate renewed by the scheduler; valid until ${formatDate(notAfter)}`),
      });
      if (json) {
        const fields = { event: 'serving', url: demo.url, storage: settings.storage, notAfter: demo.notAfter()?.toISOString(), nextRenewalAt: demo.nextRenewalAt()?.toISOString() };
        writeLine(io.stdout, JSON.stringify({ ...fields, rootCertificate: demo.rootCertificatePath, curl: demo.curlCommand }));
      } else {
        writeLine(out, `certkeeper demo: serving ${demo.url} (storage ${settings.storage})`);
        writeLine(out, `Certificate for localhost, 127.0.0.1 and ::1 from the internal CA, valid until ${formatDate(demo.notAfter())}; renewal scheduled ${formatDate(demo.nextRenewalAt())}.`);
        writeLine(out, `Root certificate: ${demo.rootCertificatePath}`);
        writeLine(out, 'Verify it with:');
        writeLine(out, `  ${demo.curlCommand}`);
        writeLine(out, 'Press Ctrl-C to stop.');
      }
      await new Promise<void>((resolve) => {
        if (io.signal.aborted) resolve();
        else io.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await demo.close();
      if (json) writeLine(io.stdout, JSON.stringify({ event: 'stopped' }));
      else writeLine(out, 'certkeeper demo: stopped');
      host.finish(0);
    });
}
