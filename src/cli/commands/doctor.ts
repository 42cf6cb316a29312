import type { Command } from 'commander';
import type { CheckResult } from '../../doctor/index.js';
import { formatTable } from '../format.js';
import { commandOf, type CommandHost } from '../command.js';

export function registerDoctor(program: Command, host: CommandHost): void {
  program
    .command('doctor')
    .description('check the CA, clock, storage, challenge ports, DNS and CAA records before obtaining certificates')
    .argument('[names...]', 'names to check (A/AAAA, CAA, and the HTTP-01 path through each name)')
    .option('--caa-identity <domains...>', "the CA's CAA domain(s), when its directory does not publish caaIdentities (e.g. letsencrypt.org)")
    .option('--json', 'print the results as JSON')
    .addHelpText('after', '\nExit code 1 when any check fails; warnings do not fail.')
    .action(async (...args: unknown[]) => {
      // Loaded here, not at start-up: `certkeeper --help` needs only the definitions above.
      const [{ parseDnsServer }, { doctorFailed, runDoctor, serverResolver }, { dns01From }, { caCertificates, configuredIssuerKey, directoryUrl, openStorage }] = await Promise.all([
        import('../../dns/query.js'),
        import('../../doctor/index.js'),
        import('../dns.js'),
        import('../keeper.js'),
      ]);
      const names = (args[0] as string[] | undefined) ?? [];
      const command = commandOf(args);
      const { io, settings, logger } = host.contextFor(command);
      const flags = command.opts<{ caaIdentity?: string[]; json?: boolean }>();
      const storage = await openStorage(settings, logger);
      let results: CheckResult[];
      try {
        const acme = settings.issuer === 'acme';
        results = await runDoctor({
          names,
          storage,
          issuer: settings.issuer,
          ...(acme ? { directoryUrl: directoryUrl(settings), caCertificates: caCertificates(settings), issuerKey: configuredIssuerKey(settings) } : {}),
          agreeToTerms: settings.agreeToTerms,
          caaIdentities: flags.caaIdentity,
          http01: { port: settings.httpPort, host: settings.httpHost },
          tlsAlpn01: { port: settings.tlsAlpnPort, host: settings.tlsAlpnHost },
          dnsProvider: settings.dns !== undefined ? dns01From(settings.dns, logger).provider : undefined,
          resolver: settings.resolver !== undefined ? serverResolver(parseDnsServer(settings.resolver, '--resolver')) : undefined,
          signal: io.signal,
          logger,
        });
      } finally {
        await storage.close?.();
      }
      if (flags.json) {
        io.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      } else {
        // --quiet: only the failed checks.
        const shown = settings.quiet ? results.filter((r) => r.status === 'fail') : results;
        if (shown.length > 0) io.stdout.write(
          formatTable(
            ['RESULT', 'CHECK', 'SUBJECT', 'DETAIL', 'REMEDY'],
            shown.map((r) => [r.status.toUpperCase(), r.check, r.subject ?? '-', r.detail, r.remedy ?? '']),
          ),
        );
      }
      host.finish(doctorFailed(results) ? 1 : 0);
    });
}
