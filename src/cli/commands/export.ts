import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { InvalidOptionError } from '../../errors.js';
import { promptHidden } from '../prompt.js';
import { commandOf, type CommandHost } from '../command.js';

interface ExportFlags {
  format: 'pem' | 'p12';
  out?: string;
  password?: string;
  passwordFile?: string;
  issuerKey?: string;
  json?: boolean;
}

export function registerExport(program: Command, host: CommandHost): void {
  program
    .command('export')
    .description('write a stored certificate with its chain and private key as PEM or a password-protected PKCS#12 file')
    .argument('<name>', 'a name the certificate covers')
    .addOption(new Option('--format <format>', 'pem (chain then key) or p12').choices(['pem', 'p12']).default('pem'))
    .option('--out <path>', 'file to write (mode 0600); default stdout')
    .option('--password <password>', 'PKCS#12 password (visible to other local users in the process list; prefer --password-file or the prompt)')
    .option('--password-file <file>', 'read the PKCS#12 password from the first line of this file')
    .option('--json', 'with --format pem: print { names, issuer, serialNumber, notAfter, certificatePem, privateKeyPem } (the key included)')
    .option('--issuer-key <key>', 'storage folder of the issuer, when several issuers hold this name (default: the newest)')
    .action(async (...args: unknown[]) => {
      // Loaded here, not at start-up: `certkeeper --help` needs only the definitions above.
      const [{ toPkcs12 }, { loadCertificateSet }, { findStoredCertificates }, { openStorage, storageLabel }] = await Promise.all([
        import('../../issuers/pkcs12.js'),
        import('../../storage/certificates.js'),
        import('../inventory.js'),
        import('../keeper.js'),
      ]);
      const name = args[0] as string;
      const command = commandOf(args);
      const { io, settings, logger } = host.contextFor(command);
      const flags = command.opts<ExportFlags>();
      if (flags.password !== undefined && flags.passwordFile !== undefined) {
        throw new InvalidOptionError('--password', 'give either --password or --password-file, not both');
      }
      if (flags.json && flags.format !== 'pem') throw new InvalidOptionError('--json', 'works with --format pem only (PKCS#12 is binary)');
      if (flags.format === 'p12' && flags.out === undefined && io.stdout.isTTY === true) {
        throw new InvalidOptionError('--out', 'is required for --format p12 when stdout is a terminal');
      }
      const storage = await openStorage(settings, logger, { existing: true });
      let output: Buffer;
      try {
        const [found] = await findStoredCertificates(storage, name, { now: Date.now(), issuerKey: flags.issuerKey });
        if (!found) throw new InvalidOptionError('name', `no stored certificate covers ${name} in ${storageLabel(settings)}`);
        const set = await loadCertificateSet(storage, found.issuer, found.certName);
        if (flags.json) {
          const fields = { names: found.names, issuer: found.issuer, serialNumber: set.meta.serialNumber, notAfter: set.meta.notAfter };
          output = Buffer.from(`${JSON.stringify({ ...fields, certificatePem: set.certPem, privateKeyPem: set.keyPem }, null, 2)}\n`);
        } else if (flags.format === 'pem') {
          output = Buffer.from(`${set.certPem.trimEnd()}\n${set.keyPem.trimEnd()}\n`);
        } else {
          const password = await exportPassword(flags, host);
          output = toPkcs12({ certPem: set.certPem, keyPem: set.keyPem, password, friendlyName: found.names[0] });
        }
      } finally {
        await storage.close?.();
      }
      if (flags.out !== undefined) {
        const path = resolve(io.cwd, flags.out);
        await writeFile(path, output, { mode: 0o600 });
        if (!settings.quiet) io.stderr.write(`Wrote ${flags.json ? 'JSON' : flags.format === 'pem' ? 'PEM chain and key' : 'PKCS#12'} for ${name} to ${path}\n`);
      } else {
        io.stdout.write(output);
      }
      host.finish(0);
    });
}

async function exportPassword(flags: ExportFlags, host: CommandHost): Promise<string> {
  if (flags.password !== undefined) {
    if (flags.password.length === 0) throw new InvalidOptionError('--password', 'must not be empty');
    return flags.password;
  }
  if (flags.passwordFile !== undefined) {
    const text = await readFile(resolve(host.io.cwd, flags.passwordFile), 'utf8').catch((error: unknown) => {
      throw new InvalidOptionError('--password-file', `cannot read ${flags.passwordFile}: ${(error as Error).message}`, { cause: error });
    });
    const password = text.split(/\r?\n/)[0] ?? '';
    if (password.length === 0) throw new InvalidOptionError('--password-file', 'the first line is empty');
    return password;
  }
  const { stdin, stderr } = host.io;
  const first = await promptHidden('PKCS#12 password: ', stdin, stderr);
  if (first.length === 0) throw new InvalidOptionError('--password', 'must not be empty');
  const again = await promptHidden('Repeat the password: ', stdin, stderr);
  if (again !== first) throw new InvalidOptionError('--password', 'the two passwords differ');
  return first;
}
