import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { AbortedError, DnsProviderError, InvalidOptionError } from '../../src/errors.js';
import { EXEC_STDERR_LIMIT, ExecDnsProvider } from '../../src/dns/exec.js';
import { startBind, type BindHandle } from '../helpers/bind.js';
import { skipUnlessInstalled } from '../helpers/system.js';

const HOOK = fileURLToPath(new URL('./fixtures/nsupdate-hook.sh', import.meta.url));

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'certkeeper-exec-'));
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function script(name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

/** True when the process is gone or a zombie (this machine's init reaps slowly). */
async function processGone(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return / Z /.test(stat.slice(stat.lastIndexOf(')')));
  } catch {
    return true;
  }
}

describe('ExecDnsProvider with an nsupdate script against BIND9', { skip: skipUnlessInstalled('named', 'nsupdate', 'dig') }, () => {
  let bind: BindHandle;
  const secret = randomBytes(32).toString('base64');

  before(async () => {
    bind = await startBind({ zones: [{ name: 'example.test' }], tsig: { name: 'hook-key', algorithm: 'hmac-sha256', secret } });
  });
  after(async () => {
    await bind?.stop();
  });

  test('present and cleanup are visible in the zone', async () => {
    const provider = new ExecDnsProvider({
      command: HOOK,
      env: { DNS_SERVER: '127.0.0.1', DNS_PORT: String(bind.port), DNS_ZONE: 'example.test', TSIG_NAME: 'hook-key', TSIG_SECRET: secret },
    });
    const name = '_acme-challenge.exec.example.test';
    await provider.addTxtRecord({ name, value: 'exec-one', ttl: 60 });
    await provider.addTxtRecord({ name, value: 'exec-two', ttl: 60 });
    assert.deepEqual(await bind.txt(name), ['exec-one', 'exec-two']);
    await provider.removeTxtRecord({ name, value: 'exec-one', ttl: 60 });
    assert.deepEqual(await bind.txt(name), ['exec-two']);
    await provider.removeTxtRecord({ name, value: 'exec-two', ttl: 60 });
    assert.deepEqual(await bind.txt(name), []);
  });

  test("nsupdate's failure (wrong secret) is a typed error carrying its stderr", async () => {
    const provider = new ExecDnsProvider({
      command: HOOK,
      env: { DNS_SERVER: '127.0.0.1', DNS_PORT: String(bind.port), DNS_ZONE: 'example.test', TSIG_NAME: 'hook-key', TSIG_SECRET: randomBytes(32).toString('base64') },
    });
    await assert.rejects(provider.addTxtRecord({ name: '_acme-challenge.example.test', value: 'x', ttl: 60 }), (e: unknown) => {
      assert.ok(e instanceof DnsProviderError);
      assert.match(e.reason ?? '', /^exit [1-9]/);
      assert.match(e.message, /BADSIG|tsig/i);
      return true;
    });
  });
});

describe('ExecDnsProvider', () => {
  test('runs the program with exactly [...args, action, fqdn., value], no shell', async () => {
    const out = join(dir, 'argv.txt');
    const cmd = await script('argv.sh', `for a in "$@"; do printf '%s\\n' "$a"; done > "${out}"\nprintf '%s\\n' "$CERTKEEPER_DNS_TTL" "$CERTKEEPER_DNS_ZONE" "$EXTRA" >> "${out}"`);
    const provider = new ExecDnsProvider({ command: cmd, args: ['--flag'], env: { EXTRA: 'extra-env' } });
    const value = 'v $(touch /tmp/pwned) `id`; rm -rf "x"';
    await provider.addTxtRecord({ name: '_acme-challenge.a.example.test', value, ttl: 77, zone: 'example.test' });
    assert.deepEqual((await readFile(out, 'utf8')).split('\n').slice(0, -1), [
      '--flag',
      'present',
      '_acme-challenge.a.example.test.',
      value,
      '77',
      'example.test',
      'extra-env',
    ]);
    await provider.removeTxtRecord({ name: '_acme-challenge.a.example.test.', value, ttl: 77 });
    assert.deepEqual((await readFile(out, 'utf8')).split('\n').slice(1, 3), ['cleanup', '_acme-challenge.a.example.test.']);
  });

  test('a non-zero exit is a DnsProviderError with the end of stderr, truncated', async () => {
    const cmd = await script('fail.sh', `head -c 5000 /dev/zero | tr '\\0' 'n' >&2\necho 'the real cause' >&2\nexit 3`);
    const provider = new ExecDnsProvider({ command: cmd });
    await assert.rejects(provider.addTxtRecord({ name: '_acme-challenge.example.test', value: 'v', ttl: 60 }), (e: unknown) => {
      assert.ok(e instanceof DnsProviderError);
      assert.equal(e.code, 'ERR_DNS_PROVIDER');
      assert.equal(e.reason, 'exit 3');
      assert.match(e.message, /the real cause$/);
      assert.ok(e.message.length < EXEC_STDERR_LIMIT + 300, `message is ${e.message.length} chars`);
      return true;
    });
  });

  test('a program that runs too long is killed, with its children, and reported as TIMEOUT', async () => {
    const pidFile = join(dir, 'sleep.pid');
    const cmd = await script('slow.sh', `sleep 30 &\necho $! > "${pidFile}"\nwait`);
    const provider = new ExecDnsProvider({ command: cmd, timeoutMs: 300 });
    await assert.rejects(provider.addTxtRecord({ name: '_acme-challenge.example.test', value: 'v', ttl: 60 }), { code: 'ERR_DNS_PROVIDER', reason: 'TIMEOUT' });
    const pid = Number(await readFile(pidFile, 'utf8'));
    assert.ok(await processGone(pid), 'the script\'s child "sleep" is still running');
  });

  test('an abort stops the program and rejects with AbortedError', async () => {
    const cmd = await script('abortable.sh', 'sleep 30');
    const provider = new ExecDnsProvider({ command: cmd });
    const controller = new AbortController();
    const pending = provider.removeTxtRecord({ name: '_acme-challenge.example.test', value: 'v', ttl: 60 }, controller.signal);
    setImmediate(() => controller.abort());
    await assert.rejects(pending, AbortedError);
  });

  test('a missing program is a SPAWN error', async () => {
    const provider = new ExecDnsProvider({ command: join(dir, 'does-not-exist') });
    await assert.rejects(provider.addTxtRecord({ name: '_acme-challenge.example.test', value: 'v', ttl: 60 }), { reason: 'SPAWN' });
  });

  test('options are validated, and env values are not shown by inspect or JSON', () => {
    assert.throws(() => new ExecDnsProvider({ command: '' }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'command');
    assert.throws(() => new ExecDnsProvider({ command: 'x', args: [1 as never] }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'args');
    assert.throws(() => new ExecDnsProvider({ command: 'x', timeoutMs: -1 }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'timeoutMs');
    const provider = new ExecDnsProvider({ command: 'x', env: { TOKEN: 'very-secret-token' } });
    assert.ok(!JSON.stringify(provider).includes('very-secret-token'));
    assert.match(JSON.stringify(provider), /TOKEN/);
  });
});
