/**
 * Running the peer ACME clients from Debian (lego, certbot, Caddy) against a
 * Pebble started by the benchmark, each in its own best mode, with private
 * working directories (no ~/.lego, no /etc/letsencrypt, no ~/.local/share/caddy).
 * Every process started here is killed by its caller's cleanup through `kill()`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePorts, type PebbleHandle } from '../../test/helpers/pebble.js';

export function installed(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

function run(bin: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; output: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => (output += `spawn error: ${error.message}`));
    child.on('close', (code) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, output, timedOut });
    });
  });
}

export interface PeerRun {
  ms: number;
  ok: number;
  failed: number;
  timedOut: boolean;
  error?: string;
}

/** Runs one tool process per name, in turn, until all are done or `timeoutMs` has passed; keeps the first error's last lines. */
async function onePerName(names: string[], timeoutMs: number, runFor: (name: string) => ReturnType<typeof run>): Promise<PeerRun> {
  const t0 = performance.now();
  let ok = 0;
  let error: string | undefined;
  const result = (timedOut: boolean): PeerRun => ({ ms: performance.now() - t0, ok, failed: names.length - ok, timedOut, ...(error ? { error } : {}) });
  for (const name of names) {
    if (performance.now() - t0 > timeoutMs) return result(true);
    const r = await runFor(name);
    if (r.code === 0) ok++;
    else error ??= r.output.trim().split('\n').slice(-2).join(' ');
    if (r.timedOut) return result(true);
  }
  return result(false);
}

/** lego, one process per certificate (as its users script it), standalone HTTP-01 server. */
export function legoIssue(pebble: PebbleHandle, caFile: string, dir: string, names: string[], timeoutMs: number): Promise<PeerRun> {
  return onePerName(names, timeoutMs, (name) =>
    run(
      'lego',
      ['--server', pebble.directoryUrl, '--accept-tos', '--email', 'bench@example.test', '--key-type', 'ec256', '--http', '--http.port', `127.0.0.1:${pebble.httpPort}`, '--path', dir, '--domains', name, 'run'],
      { ...process.env, HOME: dir, LEGO_CA_CERTIFICATES: caFile },
      timeoutMs,
    ),
  );
}

/** certbot, one process per certificate, standalone HTTP-01 server. */
export function certbotIssue(pebble: PebbleHandle, caFile: string, dir: string, names: string[], timeoutMs: number): Promise<PeerRun> {
  return onePerName(names, timeoutMs, (name) =>
    run(
      'certbot',
      [
        'certonly', '--standalone', '--non-interactive', '--agree-tos', '--email', 'bench@example.test',
        '--server', pebble.directoryUrl, '--http-01-port', String(pebble.httpPort), '--http-01-address', '127.0.0.1',
        '--preferred-challenges', 'http', '--key-type', 'ecdsa', '--elliptic-curve', 'secp256r1',
        '--config-dir', join(dir, 'config'), '--work-dir', join(dir, 'work'), '--logs-dir', join(dir, 'logs'),
        '--no-random-sleep-on-renew', '-d', name,
      ],
      { ...process.env, HOME: dir, REQUESTS_CA_BUNDLE: caFile },
      timeoutMs,
    ),
  );
}

export interface CaddyProcess {
  child: ChildProcess;
  output(): string;
  kill(): Promise<void>;
}

/** Starts `caddy run` with a Caddyfile serving `names` (one site block), private HOME/XDG dirs and storage `storageRoot`. */
export async function startCaddy(options: { dir: string; storageRoot: string; acmeCa: string; acmeCaRoot: string; httpPort: number; httpsPort: number; names: string[] }): Promise<CaddyProcess> {
  await mkdir(options.dir, { recursive: true });
  const caddyfile = [
    '{',
    `  acme_ca ${options.acmeCa}`,
    `  acme_ca_root ${options.acmeCaRoot}`,
    '  email bench@example.test',
    `  http_port ${options.httpPort}`,
    `  https_port ${options.httpsPort}`,
    `  storage file_system {`,
    `    root ${options.storageRoot}`,
    '  }',
    '  ocsp_stapling off',
    '  skip_install_trust',
    '  default_bind 127.0.0.1',
    '  admin off',
    '  log {',
    '    level ERROR',
    '  }',
    '}',
    `${options.names.join(', ')} {`,
    '  respond "ok"',
    '}',
    '',
  ].join('\n');
  const file = join(options.dir, 'Caddyfile');
  await writeFile(file, caddyfile);
  const home = join(options.dir, 'home');
  await mkdir(home, { recursive: true });
  const child = spawn('caddy', ['run', '--config', file, '--adapter', 'caddyfile'], {
    env: { ...process.env, HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (output = (output + c).slice(-20_000)));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (output = (output + c).slice(-20_000)));
  child.on('close', () => live.delete(child));
  return {
    child,
    output: () => output,
    kill: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await closed;
      clearTimeout(timer);
    },
  };
}

/** RSS of a process in bytes (from /proc), or NaN. */
export async function rssOf(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN;
  const { readFile } = await import('node:fs/promises');
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
    return kb ? Number(kb) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

export { freePorts };

/** User + system CPU time of a process in microseconds, from /proc/<pid>/stat (clock ticks of 10 ms). */
export async function cpuMicrosOf(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN;
  const { readFile } = await import('node:fs/promises');
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
    return ticks * 10_000;
  } catch {
    return Number.NaN;
  }
}

/**
 * On-CPU time of a process's main thread in microseconds, nanosecond-precise (/proc/<pid>/schedstat
 * is the thread-group leader's): where a Node server runs JS and OpenSSL. The gap to cpuMicrosOf is
 * the other threads (GC helpers, libuv pool).
 */
export async function mainThreadMicrosOf(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN;
  const { readFile } = await import('node:fs/promises');
  try {
    return Number((await readFile(`/proc/${pid}/schedstat`, 'utf8')).split(' ')[0]) / 1000;
  } catch {
    return Number.NaN;
  }
}
