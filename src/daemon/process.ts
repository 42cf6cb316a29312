/**
 * The daemon as a process (`certkeeper run`): reads the config file, starts,
 * reloads the file on SIGHUP (keeping the running configuration when the new
 * one is invalid, and saying why), and stops cleanly when `stop` aborts
 * (SIGTERM or SIGINT in the bin). The signal sources are injected, so the
 * same code runs in tests without real signals.
 */
import type { SettingsInput } from '../cli/settings.js';
import { cliLogger, type CliOutput } from '../cli/io.js';
import type { Logger } from '../logger.js';
import { DEFAULT_DAEMON_LOG_LEVEL } from '../defaults.js';
import { loadDaemonConfig, type DaemonConfig } from './config.js';
import { Daemon } from './daemon.js';

export interface DaemonProcessOptions {
  configPath: string;
  flags: SettingsInput;
  env: NodeJS.ProcessEnv;
  cwd: string;
  stderr: CliOutput;
  /** Aborted to stop (SIGTERM/SIGINT). */
  stop: AbortSignal;
  /** Registers the reload trigger (SIGHUP); returns its removal. */
  onReload(listener: () => void): () => void;
  /** Told once the daemon is running (tests, the systemd notify hook one day). */
  onStarted?: (daemon: Daemon) => void;
}

/** Runs until `stop` aborts; rejects only when the first configuration is invalid or cannot start. */
export async function runDaemonProcess(options: DaemonProcessOptions): Promise<void> {
  const load = (): DaemonConfig => loadDaemonConfig({ path: options.configPath, flags: options.flags, env: options.env, cwd: options.cwd });
  const config = load();
  const logger = daemonLogger(config, options.stderr);
  const daemon = new Daemon({ logger });
  // The keeper's timers do not hold the process open (they are unref'd); the daemon must.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  // Listening from the start: a SIGHUP while certificates are still being obtained must not kill the process;
  // it reloads once the start is done.
  let started = false;
  let reloadRequested = false;
  let reloads = Promise.resolve();
  const requestReload = (): void => {
    if (!started) {
      reloadRequested = true;
      return;
    }
    reloads = reloads.then(() => reload(daemon, load, logger));
  };
  const removeReload = options.onReload(requestReload);
  try {
    if (options.stop.aborted) return;
    const stopped = new Promise<void>((resolve) => options.stop.addEventListener('abort', () => resolve(), { once: true }));
    // A stop while starting closes the keeper at once, which ends the start.
    void stopped.then(() => daemon.close());
    try {
      await daemon.start(config);
    } catch (error) {
      if (options.stop.aborted) return;
      throw error;
    }
    started = true;
    logger.info({ path: config.path, pid: process.pid }, 'certkeeper daemon running (SIGHUP reloads the configuration, SIGTERM stops)');
    if (reloadRequested) requestReload();
    options.onStarted?.(daemon);
    await stopped;
    logger.info({}, 'stopping');
    await reloads;
  } finally {
    removeReload();
    await daemon.close();
    clearInterval(keepAlive);
  }
}

async function reload(daemon: Daemon, load: () => DaemonConfig, logger: Logger): Promise<void> {
  let next: DaemonConfig;
  try {
    next = load();
  } catch (error) {
    logger.error({ err: error }, 'configuration not reloaded, the running one stays');
    return;
  }
  try {
    await daemon.reload(next);
  } catch (error) {
    logger.error({ err: error }, 'configuration not reloaded, the running one stays');
  }
}

function daemonLogger(config: DaemonConfig, stderr: CliOutput): Logger {
  const { settings } = config;
  return cliLogger(config.logLevelSet ? settings.logLevel : DEFAULT_DAEMON_LOG_LEVEL, stderr, settings.logFormat);
}
