import type { Command } from 'commander';
import { DEFAULT_INTERNAL_CA_NAME } from '../../defaults.js';
import { shellQuote } from '../shell.js';
import { join } from 'node:path';
import { commandOf, type CommandHost } from '../command.js';

export function registerTrust(program: Command, host: CommandHost): void {
  program
    .command('trust')
    .description("print the internal CA's root certificate path and the commands that trust it (installs nothing)")
    .option('--json', 'print the root path and the CA name as JSON (for scripts)')
    .action(async (...args: unknown[]) => {
      // Loaded here, not at start-up: `certkeeper --help` needs only the definitions above.
      const [{ InternalIssuer }, { openStorage }, { FileStorage }] = await Promise.all([
        import('../../issuers/internal.js'),
        import('../keeper.js'),
        import('../../storage/file.js'),
      ]);
      const command = commandOf(args);
      const { io, settings, logger, out } = host.contextFor(command);
      const storage = await openStorage(settings, logger);
      const issuer = new InternalIssuer({ storage, logger });
      let pem: string;
      try {
        // Creates the CA on first use, so the path printed exists.
        pem = await issuer.rootCertificatePem(io.signal);
      } finally {
        await issuer.close();
        await storage.close?.();
      }
      const json = command.opts<{ json?: boolean }>().json === true;
      if (storage instanceof FileStorage) {
        const path = join(storage.root, ...issuer.rootCertificateKey().split('/'));
        if (json) io.stdout.write(`${JSON.stringify({ ca: DEFAULT_INTERNAL_CA_NAME, rootCertificate: path }, null, 2)}\n`);
        else out.write(trustInstructions(path));
      } else if (json) {
        io.stdout.write(`${JSON.stringify({ ca: DEFAULT_INTERNAL_CA_NAME, rootCertificatePem: pem }, null, 2)}\n`);
      } else {
        // No file to point at: the certificate itself, to save and trust.
        if (!settings.quiet) io.stderr.write(`The root certificate of the internal CA "${DEFAULT_INTERNAL_CA_NAME}" follows; save it to a file and trust that file.\n`);
        io.stdout.write(pem.endsWith('\n') ? pem : `${pem}\n`);
      }
      host.finish(0);
    });
}

/** The text `certkeeper trust` prints. */
export function trustInstructions(rootPath: string): string {
  const p = shellQuote(rootPath);
  const nick = `certkeeper ${DEFAULT_INTERNAL_CA_NAME} CA`;
  return [
    `Root certificate of the internal CA "${DEFAULT_INTERNAL_CA_NAME}":`,
    `  ${rootPath}`,
    '',
    'certkeeper installs nothing. To trust it, run what fits:',
    '',
    '  System store (Debian, Ubuntu; curl, wget, most programs):',
    `    sudo cp ${p} /usr/local/share/ca-certificates/certkeeper-${DEFAULT_INTERNAL_CA_NAME}.crt && sudo update-ca-certificates`,
    '  Node.js (this shell only):',
    `    export NODE_EXTRA_CA_CERTS=${p}`,
    '  Browsers using NSS (Chrome/Chromium on Linux; Firefox: use its profile directory with -d):',
    `    certutil -d sql:$HOME/.pki/nssdb -A -t "C,," -n "${nick}" -i ${p}`,
    '  One curl command:',
    `    curl --cacert ${p} https://localhost:8443/`,
    '',
    'To undo: remove the copied file and run "sudo update-ca-certificates --fresh";',
    `"certutil -d sql:$HOME/.pki/nssdb -D -n \\"${nick}\\""; unset NODE_EXTRA_CA_CERTS.`,
    '',
  ].join('\n');
}
