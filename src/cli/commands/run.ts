import type { Command } from 'commander';
import { InvalidOptionError } from '../../errors.js';
import { notifyFlagsFrom } from '../notify-settings.js';
import { CONFIG_ENV, SETTINGS, type SettingsInput } from '../settings.js';
import { commandOf, type CommandHost } from '../command.js';

export function registerRun(program: Command, host: CommandHost): void {
  program
    .command('run')
    .description('run as a daemon: keep the certificates of the --config file (or CERTKEEPER_CONFIG) renewed, write their files, run deploy hooks; SIGHUP reloads the file')
    .option('--json', 'log JSON lines on stderr (the same as --log-format json)')
    .action(async (...args: unknown[]) => {
      // Loaded here, not at start-up: `certkeeper --help` needs only the definitions above.
      const { runDaemonProcess } = await import('../../daemon/process.js');
      const command = commandOf(args);
      const { io } = host;
      const opts = command.optsWithGlobals<Record<string, unknown>>();
      const configPath = (opts.config as string | undefined) ?? (io.env[CONFIG_ENV] || undefined);
      if (configPath === undefined) throw new InvalidOptionError('--config', `is required: the daemon's JSON file of certificates, files and hooks (or ${CONFIG_ENV})`);
      // The same flags as every command; the file is the daemon's own (a superset of the CLI's settings file).
      const flags: SettingsInput = {};
      for (const key of Object.keys(SETTINGS)) if (opts[key] !== undefined) (flags as Record<string, unknown>)[key] = opts[key];
      if (opts.json === true) (flags as Record<string, unknown>).logFormat = 'json';
      const notify = notifyFlagsFrom(opts);
      if (notify !== undefined) (flags as Record<string, unknown>).notify = notify;
      const onReload = (listener: () => void): (() => void) => {
        process.on('SIGHUP', listener);
        return () => process.off('SIGHUP', listener);
      };
      await runDaemonProcess({ configPath, flags, env: io.env, cwd: io.cwd, stderr: io.stderr, stop: io.signal, onReload });
      host.finish(0);
    });
}
