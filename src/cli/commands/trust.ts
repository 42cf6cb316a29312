import type { Command } from 'commander';
import { DEFAULT_INTERNAL_CA_NAME } from '../../defaults.js';
import { shellQuote } from '../shell.js';
import { join } from 'node:path';
import { commandOf, type Registry } from './index.js';

export function registerTrust(program: Command, registry: Registry): void {
  program
    .command('trust')
    .description("print the internal CA's root certificate path and the commands that trust it (installs nothing)")
    .option('--json', 'print the root path and the CA name as JSON (for scripts)')
    .action(async (...args: unknown[]) => {
      // Loaded here, not at start-up: `certkeeper --help` needs only the definitions above.
      const [{ InternalIssuer }, { openStorage }] = await Promise.all([import('../../issuers/internal.js'), import('../keeper.js')]);
      const command = commandOf(args);
      const { io, settings, logger } = registry.contextFor(command);
      const storage = openStorage(settings, logger);
      const issuer = new InternalIssuer({ storage, logger });
      let path: string;
      try {
        // Creates the CA on first use, so the path printed exists.
        await issuer.rootCertificatePem(io.signal);
        path = join(storage.root, ...issuer.rootCertificateKey().split('/'));
      } finally {
        await issuer.close();
        await storage.close();
      }
      if (command.opts<{ json?: boolean }>().json) io.stdout.write(`${JSON.stringify({ ca: DEFAULT_INTERNAL_CA_NAME, rootCertificate: path }, null, 2)}\n`);
      else io.stdout.write(trustInstructions(path));
      registry.finish(0);
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
