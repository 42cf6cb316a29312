import { execFileSync } from 'node:child_process';

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
};

const found = new Map<string, string | undefined>();

export function findBinary(name: string): string | undefined {
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
  const hint = [...new Set(missing.map((n) => INSTALL_HINTS[n] ?? `install ${n}`))].join(' && ');
  const reason = `${missing.join(', ')} not installed; run: ${hint}`;
  if (process.env.CI === 'true') throw new Error(`CI requires every test to run: ${reason}`);
  console.error(`# skipping: ${reason}`);
  return reason;
}
