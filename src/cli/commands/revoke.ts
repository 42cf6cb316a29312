import type { Command } from 'commander';
import { InvalidOptionError } from '../../errors.js';
import type { RevocationReason } from '../../issuers/types.js';
import { commandOf, type CommandHost } from '../command.js';

/** RFC 5280 CRLReason codes ACME accepts (RFC 8555 section 7.6), by name. */
export const REVOCATION_REASON_NAMES: Readonly<Record<string, RevocationReason>> = {
  unspecified: 0,
  keyCompromise: 1,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  privilegeWithdrawn: 9,
};

export function parseRevocationReason(value: string): RevocationReason {
  if (/^\d+$/.test(value)) {
    const code = Number(value);
    if ((Object.values(REVOCATION_REASON_NAMES) as number[]).includes(code)) return code as RevocationReason;
  } else {
    const byName = Object.entries(REVOCATION_REASON_NAMES).find(([name]) => name.toLowerCase() === value.toLowerCase());
    if (byName) return byName[1];
  }
  const allowed = Object.entries(REVOCATION_REASON_NAMES).map(([name, code]) => `${code}/${name}`).join(', ');
  throw new InvalidOptionError('--reason', `must be one of ${allowed}`);
}

export function registerRevoke(program: Command, host: CommandHost): void {
  program
    .command('revoke')
    .description('revoke the stored certificate covering <name> at its ACME CA, then delete it from storage')
    .argument('<name>', 'a name the certificate covers')
    .option('--reason <code|name>', 'unspecified (0, default), keyCompromise (1), affiliationChanged (3), superseded (4), cessationOfOperation (5), privilegeWithdrawn (9)', 'unspecified')
    .option('--json', 'print what was revoked as JSON (for scripts)')
    .action(async (...args: unknown[]) => {
      // Loaded here, not at start-up: `certkeeper --help` needs only the definitions above.
      const [{ AcmeIssuer }, { loadCertificateSet }, { certificateKeys, certificateLockName }, { findStoredCertificates }, { caCertificates, configuredIssuerKey, directoryUrl, openStorage }] =
        await Promise.all([
          import('../../issuers/acme.js'),
          import('../../storage/certificates.js'),
          import('../../storage/layout.js'),
          import('../inventory.js'),
          import('../keeper.js'),
        ]);
      const name = args[0] as string;
      const command = commandOf(args);
      const { io, settings, logger } = host.contextFor(command);
      const reason = parseRevocationReason(command.opts<{ reason: string }>().reason);
      if (settings.issuer === 'internal') throw new InvalidOptionError('--issuer', 'the internal CA publishes no revocation; revoke works with an ACME CA');
      const storage = await openStorage(settings, logger, { existing: true });
      const issuer = new AcmeIssuer({
        directoryUrl: directoryUrl(settings),
        caCertificates: caCertificates(settings),
        agreeToTerms: settings.agreeToTerms,
        ...(settings.email !== undefined ? { email: settings.email } : {}),
        storage,
        solvers: {},
        logger,
      });
      try {
        const [found] = await findStoredCertificates(storage, name, { now: Date.now(), issuerKey: issuer.key });
        if (!found) throw new InvalidOptionError('name', `no stored certificate of ${configuredIssuerKey(settings)} covers ${name}`);
        const lock = certificateLockName(found.certName);
        await storage.lock(lock, { signal: io.signal });
        try {
          const set = await loadCertificateSet(storage, found.issuer, found.certName);
          await issuer.revoke(set.certPem, reason, io.signal);
          // A revoked certificate must not be served again: a keeper finding nothing stored obtains a new one.
          await storage.delete(certificateKeys(found.issuer, found.certName).prefix);
        } finally {
          await storage.unlock(lock);
        }
        if (command.opts<{ json?: boolean }>().json) {
          io.stdout.write(`${JSON.stringify({ names: found.names, issuer: found.issuer, serialNumber: found.serialNumber, reason, removedFromStorage: true }, null, 2)}\n`);
        } else {
          if (!settings.quiet) io.stdout.write(`Revoked certificate ${found.serialNumber} for ${found.names.join(', ')} (reason ${reason}) and removed it from storage.\n`);
        }
      } finally {
        await issuer.close();
        await storage.close?.();
      }
      host.finish(0);
    });
}
