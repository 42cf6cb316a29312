import { execFileSync } from 'node:child_process';
import { networkInterfaces } from 'node:os';

/** Debian packages that provide each test server binary. */
export const INSTALL_HINTS: Record<string, string> = {
  pebble: 'apt-get install -y pebble',
  'pebble-challtestsrv': 'apt-get install -y pebble',
  named: 'apt-get install -y bind9 bind9-dnsutils',
  nsupdate: 'apt-get install -y bind9-dnsutils',
  dig: 'apt-get install -y bind9-dnsutils',
  pdns_server: 'apt-get install -y pdns-server pdns-backend-sqlite3',
  openssl: 'apt-get install -y openssl',
  curl: 'apt-get install -y curl',
  chromium: 'apt-get install -y chromium',
  certutil: 'apt-get install -y libnss3-tools',
  'tsig-keygen': 'apt-get install -y bind9',
  promtool: 'apt-get install -y prometheus',
  // One line for both: the daemon's tests use them side by side.
  nginx: 'apt-get install -y nginx haproxy',
  haproxy: 'apt-get install -y nginx haproxy',
  etcd: 'apt-get install -y etcd-server',
  'redis-server': 'apt-get install -y redis-server',
  faketime: 'apt-get install -y faketime',
};

const found = new Map<string, string | undefined>();

/** CERTKEEPER_TEST_HIDE_BINARIES=pebble,named makes those look missing (to test the skip path). */
const hidden = new Set((process.env.CERTKEEPER_TEST_HIDE_BINARIES ?? '').split(',').filter(Boolean));

export function findBinary(name: string): string | undefined {
  if (hidden.has(name)) return undefined;
  if (!found.has(name)) {
    let path: string | undefined;
    for (const dir of ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin']) {
      try {
        execFileSync('test', ['-x', `${dir}/${name}`]);
        path = `${dir}/${name}`;
        break;
      } catch {
        // not in this directory
      }
    }
    found.set(name, path);
  }
  return found.get(name);
}

/**
 * Returns a skip reason when a test server binary is missing, printing the
 * install line. On CI (CI=true) a missing binary is an error: every test must run there.
 */
export function skipUnlessInstalled(...names: string[]): string | false {
  const missing = names.filter((n) => !findBinary(n));
  if (missing.length === 0) return false;
  const hint = installLine(missing);
  const reason = `${missing.join(', ')} not installed; run: ${hint}`;
  if (process.env.CI === 'true') throw new Error(`CI requires every test to run: ${reason}`);
  console.error(`# skipping: ${reason}`);
  return reason;
}

/** One apt-get line for every missing binary, each package once. */
export function installLine(missing: readonly string[]): string {
  const packages = new Set<string>();
  const other: string[] = [];
  for (const name of missing) {
    const hint = INSTALL_HINTS[name];
    if (hint?.startsWith('apt-get install -y ')) for (const p of hint.slice('apt-get install -y '.length).split(' ')) packages.add(p);
    else other.push(`install ${name}`);
  }
  return [...(packages.size > 0 ? [`apt-get install -y ${[...packages].join(' ')}`] : []), ...other].join(' && ');
}

/** True when the machine has the IPv6 loopback address ::1 (containers often run without IPv6). */
export function ipv6Loopback(): boolean {
  return Object.values(networkInterfaces()).some((list) => list?.some((i) => i.family === 'IPv6' && i.address === '::1'));
}
