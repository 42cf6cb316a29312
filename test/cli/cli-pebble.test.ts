import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadCertificateSet } from '../../src/storage/certificates.js';
import { FileStorage } from '../../src/storage/file.js';
import { issuerKeyFromDirectoryUrl } from '../../src/storage/layout.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';
import { completion, runCli, spawnCli } from './helpers.js';

const skip = skipUnlessInstalled('pebble', 'pebble-challtestsrv', 'openssl');

function openssl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('openssl', args, { timeout: 15_000 }, (error, stdout, stderr) => (error ? reject(new Error(`openssl ${args[0]}: ${stderr}`)) : resolve(stdout))),
  );
}

function pemBlocks(text: string, label: string): string[] {
  return [...text.matchAll(new RegExp(`-----BEGIN ${label}-----[\\s\\S]+?-----END ${label}-----`, 'g'))].map((m) => m[0]);
}

describe('certkeeper CLI against Pebble', { skip }, () => {
  let pebble: PebbleHandle;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let storageDir: string;
  let issuerKey: string;

  before(async () => {
    pebble = await startPebble({ domainBlocklist: ['blocked.example.test'] });
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-cli-'));
    storageDir = join(dir, 'storage');
    const caRoot = join(dir, 'pebble-https-ca.pem');
    await writeFile(caRoot, pebble.pebbleCaPem);
    issuerKey = issuerKeyFromDirectoryUrl(pebble.directoryUrl);
    env = {
      CERTKEEPER_CA: pebble.directoryUrl,
      CERTKEEPER_CA_ROOT: caRoot,
      CERTKEEPER_AGREE_TO_TERMS: '1',
      CERTKEEPER_EMAIL: 'cli@example.test',
      CERTKEEPER_STORAGE: storageDir,
      CERTKEEPER_HTTP_PORT: String(pebble.httpPort),
      CERTKEEPER_HTTP_HOST: '127.0.0.1',
      CERTKEEPER_TLS_ALPN_PORT: String(pebble.tlsPort),
      CERTKEEPER_TLS_ALPN_HOST: '127.0.0.1',
      CERTKEEPER_LOG_LEVEL: process.env.CERTKEEPER_TEST_LOG ?? 'silent',
    };
  });
  after(async () => {
    await pebble?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const listJson = async (): Promise<Record<string, unknown>[]> => {
    const result = await runCli(['list', '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as Record<string, unknown>[];
  };

  test('obtain, list --json, renew, renew --force, export pem and p12, revoke', async () => {
    const issued = pebble.issuedCount();
    const obtained = await runCli(['obtain', 'one.example.test', 'two.example.test'], env);
    assert.equal(obtained.code, 0, obtained.stderr + obtained.stdout);
    assert.equal(pebble.issuedCount(), issued + 2);
    // Not a TTY: one plain log line per name for start and for the result.
    assert.match(obtained.stdout, /Z one\.example\.test obtained from .+, valid until /);
    assert.match(obtained.stdout, /Z two\.example\.test obtained from /);

    const storage = new FileStorage({ root: storageDir });
    const list = await listJson();
    assert.deepEqual(list.map((c) => c.name), ['one.example.test', 'two.example.test']);
    for (const entry of list) {
      const set = await loadCertificateSet(storage, issuerKey, entry.name as string);
      const cert = new X509Certificate(set.certPem);
      assert.deepEqual(entry.names, [entry.name]);
      assert.equal(entry.issuer, issuerKey);
      assert.equal(entry.notAfter, new Date(cert.validTo).toISOString());
      assert.equal(entry.notBefore, new Date(cert.validFrom).toISOString());
      assert.equal(entry.serialNumber, cert.serialNumber);
      assert.equal(entry.daysLeft, Math.floor((Date.parse(cert.validTo) - Date.now()) / 86_400_000));
      const next = Date.parse(entry.nextRenewalAt as string);
      assert.ok(next > Date.parse(cert.validFrom) && next < Date.parse(cert.validTo));
      assert.equal(entry.failures, 0);
      assert.equal(entry.lastError, null);
      assert.equal(entry.keyType, 'ecdsa-p256');
    }
    const table = await runCli(['list'], env);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /^NAMES\s+ISSUER\s+PROFILE\s+NOT AFTER\s+DAYS LEFT\s+NEXT RENEWAL\s+LAST ERROR$/m);
    // Pebble 2.4 has no profiles: the column says so.
    assert.match(table.stdout, /^one\.example\.test\s+\S+\s+-\s+\d{4}-\d\d-\d\d \d\d:\d\d UTC\s+\d+\s+\d{4}-/m);

    // Not due: nothing is ordered.
    const beforeRenew = pebble.issuedCount();
    const notDue = await runCli(['renew'], env);
    assert.equal(notDue.code, 0, notDue.stderr);
    assert.match(notDue.stdout, /one\.example\.test not due; next renewal/);
    assert.equal(pebble.issuedCount(), beforeRenew);

    const forced = await runCli(['renew', '--force', 'one.example.test'], env);
    assert.equal(forced.code, 0, forced.stderr + forced.stdout);
    assert.match(forced.stdout, /one\.example\.test renewed, valid until/);
    assert.equal(pebble.issuedCount(), beforeRenew + 1);
    const afterRenew = await listJson();
    assert.notEqual(afterRenew.find((c) => c.name === 'one.example.test')?.serialNumber, list.find((c) => c.name === 'one.example.test')?.serialNumber);
    assert.equal(afterRenew.find((c) => c.name === 'two.example.test')?.serialNumber, list.find((c) => c.name === 'two.example.test')?.serialNumber);

    const set = await loadCertificateSet(storage, issuerKey, 'one.example.test');
    const pem = await runCli(['export', 'one.example.test'], env);
    assert.equal(pem.code, 0, pem.stderr);
    assert.deepEqual(pemBlocks(pem.stdout, 'CERTIFICATE'), pemBlocks(set.certPem, 'CERTIFICATE'));
    assert.match(pem.stdout, /-----BEGIN PRIVATE KEY-----/);

    const p12Path = join(dir, 'one.p12');
    const p12 = await runCli(['export', 'one.example.test', '--format', 'p12', '--out', p12Path, '--password', 's3cret pass'], env);
    assert.equal(p12.code, 0, p12.stderr);
    assert.doesNotMatch(p12.stdout + p12.stderr, /s3cret/);
    const dump = await openssl(['pkcs12', '-in', p12Path, '-nodes', '-passin', 'pass:s3cret pass']);
    const [leafBack] = pemBlocks(dump, 'CERTIFICATE').filter((c) => new X509Certificate(c).subjectAltName?.includes('one.example.test'));
    assert.ok(leafBack, 'the leaf is in the PKCS#12 file');
    assert.equal(new X509Certificate(leafBack).fingerprint256, new X509Certificate(set.certPem).fingerprint256);
    const [keyBack] = pemBlocks(dump, 'PRIVATE KEY');
    assert.ok(keyBack);
    assert.deepEqual(
      createPrivateKey(keyBack).export({ format: 'jwk' }),
      createPrivateKey(set.keyPem).export({ format: 'jwk' }),
    );
    await assert.rejects(openssl(['pkcs12', '-in', p12Path, '-nodes', '-passin', 'pass:wrong']));

    // Password from a file; missing password without a terminal is a usage error.
    await writeFile(join(dir, 'pw.txt'), 'from-file\n');
    const fromFile = await runCli(['export', 'two.example.test', '--format', 'p12', '--out', join(dir, 'two.p12'), '--password-file', join(dir, 'pw.txt')], env);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    await openssl(['pkcs12', '-in', join(dir, 'two.p12'), '-nodes', '-passin', 'pass:from-file']);
    const noPassword = await runCli(['export', 'two.example.test', '--format', 'p12', '--out', join(dir, 'x.p12')], env);
    assert.equal(noPassword.code, 2);

    const serial = afterRenew.find((c) => c.name === 'one.example.test')?.serialNumber as string;
    const revoked = await runCli(['revoke', 'one.example.test', '--reason', 'keyCompromise', '--json'], env);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.deepEqual(JSON.parse(revoked.stdout), { names: ['one.example.test'], issuer: issuerKey, serialNumber: serial, reason: 1, removedFromStorage: true });
    assert.deepEqual((await listJson()).map((c) => c.name), ['two.example.test']);
    const status = await new Promise<string>((resolve, reject) =>
      https
        .get(`${pebble.managementUrl}/cert-status-by-serial/${serial.toLowerCase().replace(/^0+/, '')}`, { ca: pebble.pebbleCaPem }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve(body));
        })
        .on('error', reject),
    );
    assert.match(status, /"Status":\s*"Revoked"/i);
    await storage.close();
  });

  test('a wildcard through DNS-01 with the provider from CERTKEEPER_DNS; one certificate for several names with --together', async () => {
    const dns = JSON.stringify({
      provider: 'challtestsrv',
      managementUrl: pebble.challtestsrv?.managementUrl,
      propagation: { resolvers: [pebble.challtestsrv?.dnsServer], intervalMs: 50, timeoutMs: 10_000 },
    });
    const wildcard = await runCli(['obtain', '*.wild.example.test'], { ...env, CERTKEEPER_DNS: dns });
    assert.equal(wildcard.code, 0, wildcard.stdout + wildcard.stderr);
    const together = await runCli(['obtain', '--together', 'a.group.example.test', 'b.group.example.test'], env);
    assert.equal(together.code, 0, together.stdout + together.stderr);
    const list = await listJson();
    assert.deepEqual(list.find((c) => c.name === 'wildcard_.wild.example.test')?.names, ['*.wild.example.test']);
    assert.deepEqual(list.find((c) => c.name === 'a.group.example.test')?.names, ['a.group.example.test', 'b.group.example.test']);
    // A bad provider setting is a usage error.
    assert.equal((await runCli(['obtain', '*.wild.example.test'], { ...env, CERTKEEPER_DNS: '{"provider":"route53"}' })).code, 2);
  });

  test('exit codes: 1 for a failed obtain, 2 for usage errors', async () => {
    const failed = await runCli(['obtain', 'blocked.example.test'], env);
    assert.equal(failed.code, 1, failed.stdout + failed.stderr);
    assert.match(failed.stdout, /blocked\.example\.test failed: .*rejectedIdentifier/);

    assert.equal((await runCli(['obtain'], env)).code, 2);
    assert.equal((await runCli(['obtain', 'bad..name'], env)).code, 2);
    assert.equal((await runCli(['frobnicate'], env)).code, 2);
    assert.equal((await runCli(['list', '--no-such-flag'], env)).code, 2);
    assert.equal((await runCli(['revoke', 'two.example.test', '--reason', 'bored'], env)).code, 2);
    assert.equal((await runCli(['revoke', 'never.example.test'], env)).code, 2);
    assert.equal((await runCli(['list'], { ...env, CERTKEEPER_HTTP_PORT: 'eighty' })).code, 2);
    assert.equal((await runCli(['export', 'two.example.test', '--format', 'der'], env)).code, 2);
  });
});

describe('certkeeper --help and precedence', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-cli-help-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('--help works for the program and every command, exit 0', async () => {
    const top = await runCli(['--help']);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /Exit codes: 0 success, 1 failure, 2 usage error/);
    for (const command of ['obtain', 'renew', 'revoke', 'list', 'export', 'trust', 'demo', 'doctor']) {
      assert.match(top.stdout, new RegExp(`^  ${command}\\b`, 'm'));
      const help = await runCli([command, '--help']);
      assert.equal(help.code, 0, command);
      assert.match(help.stdout, new RegExp(`^Usage: certkeeper ${command}`, 'm'));
    }
  });

  test('the real bin: --help exits 0, an unknown command exits 2', async () => {
    const help = await completion(spawnCli(['--help']));
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: certkeeper/);
    const unknown = await completion(spawnCli(['nope']));
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command/);
  });

  test('settings: flags win over CERTKEEPER_* env, which wins over the --config file', async () => {
    const fileStorage = join(dir, 'from-file');
    const envStorage = join(dir, 'from-env');
    const flagStorage = join(dir, 'from-flag');
    const config = join(dir, 'config.json');
    await writeFile(config, JSON.stringify({ storage: fileStorage, httpPort: 8081 }));
    // `list` refuses a storage directory that does not exist (a typo is not an empty store).
    for (const storage of [fileStorage, envStorage, flagStorage, join(dir, 'relative-store')]) await mkdir(storage, { recursive: true });
    const storageUsed = async (args: string[], env: NodeJS.ProcessEnv): Promise<string> => {
      const result = await runCli(['list', ...args], env);
      assert.equal(result.code, 0, result.stderr);
      return /No certificates in (.+)\.$/m.exec(result.stdout)?.[1] ?? result.stdout;
    };
    assert.equal(await storageUsed(['--config', config], {}), fileStorage);
    assert.equal(await storageUsed(['--config', config], { CERTKEEPER_STORAGE: envStorage }), envStorage);
    assert.equal(await storageUsed(['--config', config, '--storage', flagStorage], { CERTKEEPER_STORAGE: envStorage }), flagStorage);
    // CERTKEEPER_CONFIG names the file when --config is absent; a relative storage path is relative to the file.
    await writeFile(config, JSON.stringify({ storage: 'relative-store' }));
    assert.equal(await storageUsed([], { CERTKEEPER_CONFIG: config }), join(dir, 'relative-store'));
    // An unknown key in the file is a usage error, not silently ignored.
    await writeFile(config, JSON.stringify({ storrage: 'x' }));
    const typo = await runCli(['list', '--config', config]);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /unknown setting "storrage"/);
  });

  test('trust prints the root path and the trust commands, creating the CA but installing nothing', async () => {
    const storage = join(dir, 'trust-store');
    const result = await runCli(['trust', '--storage', storage]);
    assert.equal(result.code, 0, result.stderr);
    const root = join(storage, 'internal', 'local', 'root.crt');
    assert.ok(result.stdout.includes(`  ${root}\n`));
    assert.match(result.stdout, /update-ca-certificates/);
    assert.ok(result.stdout.includes(`export NODE_EXTRA_CA_CERTS=${root}`));
    assert.match(result.stdout, /certutil -d sql:\$HOME\/\.pki\/nssdb -A -t "C,," -n "certkeeper local CA" -i /);
    const cert = new X509Certificate(await readFile(root));
    assert.ok(cert.ca);
  });
});
