/**
 * The `certkeeper` command line: commander parses, each command calls the
 * library and formats the result. Exit codes: 0 success, 1 failure, 2 usage
 * (unknown command or option, bad value, missing argument).
 */
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { InvalidNameError, InvalidOptionError } from '../errors.js';
import type { CommandContext, RegisterCommand } from './command.js';
import { registerDemo } from './commands/demo.js';
import { registerDoctor } from './commands/doctor.js';
import { registerExport } from './commands/export.js';
import { registerList } from './commands/list.js';
import { registerObtain } from './commands/obtain.js';
import { registerRenew } from './commands/renew.js';
import { registerRevoke } from './commands/revoke.js';
import { registerRun } from './commands/run.js';
import { registerStatus } from './commands/status.js';
import { registerStorage } from './commands/storage.js';
import { registerTrust } from './commands/trust.js';
import { cliLogger, NULL_OUTPUT, type CliIo } from './io.js';
import { NOTIFY_ENV, notifyFlagsFrom } from './notify-settings.js';
import { errorLines } from './errors.js';
import { CONFIG_ENV, LOG_FORMATS, readConfigFile, resolveCliSettings, type CliSettings, type SettingsInput } from './settings.js';

export type { CommandContext } from './command.js';

/** Every subcommand, in the order `--help` lists them: a new command is one module plus one line here. */
export const COMMANDS: readonly RegisterCommand[] = [
  registerDemo,
  registerObtain,
  registerRenew,
  registerRevoke,
  registerList,
  registerStatus,
  registerExport,
  registerTrust,
  registerDoctor,
  registerStorage,
  registerRun,
];

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A command's action: returns its exit code (a failure it has already reported) or throws. */
export type CommandAction<A extends unknown[]> = (context: CommandContext, ...args: A) => Promise<number>;

/** A failure the command already printed; only its exit code is left to apply. */
export class ReportedFailure extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

const GLOBAL_FLAGS: Record<string, keyof CliSettings> = {
  storage: 'storage',
  issuer: 'issuer',
  ca: 'ca',
  email: 'email',
  agreeToTerms: 'agreeToTerms',
  caRoot: 'caRoot',
  httpPort: 'httpPort',
  httpHost: 'httpHost',
  tlsAlpnPort: 'tlsAlpnPort',
  tlsAlpnHost: 'tlsAlpnHost',
  keyType: 'keyType',
  resolver: 'resolver',
  logLevel: 'logLevel',
  logFormat: 'logFormat',
  quiet: 'quiet',
};

export function buildProgram(io: CliIo, setExitCode: (code: number) => void, onSettings: (settings: CliSettings) => void = () => {}): Command {
  const program = new Command('certkeeper');
  program
    .description('Obtain, renew, inspect and export TLS certificates (ACME or the internal CA).')
    .version(packageVersion(), '-V, --version')
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .option('--config <file>', `JSON config file with any of the settings below (env ${CONFIG_ENV})`)
    .option('--storage <dir|url>', 'storage directory or URL: file:, redis://, rediss://, postgres://, etcd:// (env CERTKEEPER_STORAGE; default $XDG_DATA_HOME/certkeeper)')
    .addOption(new Option('--issuer <type>', 'acme or internal (env CERTKEEPER_ISSUER; default acme)').choices(['acme', 'internal']))
    .option('--ca <url|preset>', 'ACME directory URL or letsencrypt, letsencrypt-staging, zerossl, google, google-staging (env CERTKEEPER_CA)')
    .option('--email <address>', 'ACME account contact (env CERTKEEPER_EMAIL)')
    .option('--agree-to-terms', "accept the CA's terms of service (env CERTKEEPER_AGREE_TO_TERMS=1)")
    .option('--ca-root <file>', "PEM file to trust for the CA's own HTTPS (env CERTKEEPER_CA_ROOT)")
    .option('--http-port <port>', 'port of the HTTP-01 listener (env CERTKEEPER_HTTP_PORT; default 80)')
    .option('--http-host <address>', 'address of the HTTP-01 listener (env CERTKEEPER_HTTP_HOST; default all)')
    .option('--tls-alpn-port <port>', 'port of the TLS-ALPN-01 listener (env CERTKEEPER_TLS_ALPN_PORT; default 443)')
    .option('--tls-alpn-host <address>', 'address of the TLS-ALPN-01 listener (env CERTKEEPER_TLS_ALPN_HOST)')
    .option('--key-type <type>', 'ecdsa-p256 (default), ecdsa-p384, rsa2048, rsa3072, rsa4096 (env CERTKEEPER_KEY_TYPE)')
    .option('--resolver <host:port>', 'DNS server for doctor lookups (env CERTKEEPER_RESOLVER; default the system resolvers)')
    .option('--log-level <level>', 'log level on stderr: trace, debug, info, warn (default), error, silent (env CERTKEEPER_LOG_LEVEL)')
    .addOption(
      new Option('--log-format <format>', 'stderr format: human (default, on a terminal or not: one line per message, no stack trace) or json (pino lines) (env CERTKEEPER_LOG_FORMAT)').choices(LOG_FORMATS),
    )
    .option('--quiet', 'print only failures: no progress, tables or confirmations; log level error unless --log-level is given (env CERTKEEPER_QUIET=1). Errors still go to stderr, exit codes are unchanged, --json and exported data are still written')
    .option('--notify-webhook <url>', `POST signed JSON notifications (renewed, renewal failing, expiring) to this URL (env ${NOTIFY_ENV.webhook}; config file "notify")`)
    .option('--notify-secret-file <file>', `file whose first line is the webhook's HMAC key, 16+ characters (env ${NOTIFY_ENV.secretFile}, or the key itself in ${NOTIFY_ENV.secret}; never on the command line)`)
    .option('--notify-exec <command>', `run this (no shell) with each notification's JSON on stdin (env ${NOTIFY_ENV.exec})`)
    .option('--notify-events <list>', `comma-separated: renewal_failing, cert_expiring, cert_renewed, cert_replaced_early (default all; env ${NOTIFY_ENV.events})`)
    .addHelpText('after', '\nExit codes: 0 success, 1 failure, 2 usage error.\nPrecedence: flags > CERTKEEPER_* environment > --config file > defaults.');

  const contextFor = (command: Command, defaults: { storage?: string } = {}): CommandContext => {
    const opts = command.optsWithGlobals<Record<string, unknown>>();
    const flags: SettingsInput = {};
    for (const [flag, key] of Object.entries(GLOBAL_FLAGS)) {
      if (opts[flag] !== undefined) (flags as Record<string, unknown>)[key] = opts[flag];
    }
    const notify = notifyFlagsFrom(opts);
    if (notify !== undefined) (flags as Record<string, unknown>).notify = notify;
    const configPath = (opts.config as string | undefined) ?? (io.env[CONFIG_ENV] || undefined);
    const absoluteConfig = configPath !== undefined ? resolve(io.cwd, configPath) : undefined;
    const settings = resolveCliSettings(
      {
        flags,
        env: io.env,
        file: absoluteConfig !== undefined ? readConfigFile(absoluteConfig) : undefined,
        fileDir: absoluteConfig !== undefined ? dirname(absoluteConfig) : undefined,
        cwd: io.cwd,
      },
      defaults,
    );
    onSettings(settings);
    return { io, settings, out: settings.quiet ? NULL_OUTPUT : io.stdout, logger: cliLogger(settings.logLevel, io.stderr, settings.logFormat) };
  };

  const host = { io, contextFor, finish: (code: number) => setExitCode(code) };
  for (const register of COMMANDS) register(program, host);
  return program;
}

/** Runs one command line; resolves with the exit code. Never throws. */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode = EXIT_OK;
  let settings: CliSettings | undefined;
  const program = buildProgram(
    io,
    (code) => {
      exitCode = code;
    },
    (resolved) => {
      settings = resolved;
    },
  );
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return EXIT_OK;
      // commander has printed its message; any parse problem is a usage error.
      return EXIT_USAGE;
    }
    if (error instanceof ReportedFailure) return error.exitCode;
    const usage = error instanceof InvalidOptionError || error instanceof InvalidNameError;
    if (settings?.logFormat === 'json' || (settings === undefined && jsonRequested(argv, io.env))) {
      // The record carries the stack (pino's err serializer); a log pipeline wants it.
      cliLogger('error', io.stderr, 'json').error({ err: error }, usage ? 'usage error' : 'command failed');
    } else {
      io.stderr.write(errorLines(error));
      if (usage) io.stderr.write('(run with --help for usage)\n');
    }
    return usage ? EXIT_USAGE : EXIT_FAILURE;
  }
}

/** Settings may fail before they resolve (a bad flag): then the request for JSON is read from argv and env. */
function jsonRequested(argv: readonly string[], env: NodeJS.ProcessEnv): boolean {
  const at = argv.lastIndexOf('--log-format');
  if (at >= 0) return argv[at + 1] === 'json';
  if (argv.includes('--log-format=json')) return true;
  return env.CERTKEEPER_LOG_FORMAT === 'json';
}

function packageVersion(): string {
  // src/cli/ and dist/cli/ are both two levels below the package root.
  const pkg = createRequire(import.meta.url)('../../package.json') as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
}
