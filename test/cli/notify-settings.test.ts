/**
 * The CLI's notify setting resolved from its sources: each field from its
 * flag, else its CERTKEEPER_NOTIFY_* variable, else the config file; the
 * secret from a file or the environment, read only when asked for, and never
 * part of the settings as printed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { notifyOptionsFrom } from '../../src/cli/notify-settings.js';
import { resolveCliSettings, type SettingsInput } from '../../src/cli/settings.js';
import { runCli } from './helpers.js';

const SECRET = 'settings-secret-0123456789abcdef';

describe('notify setting sources', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-notify-settings-'));
    await writeFile(join(dir, 'secret'), `${SECRET}\n`);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const resolveWith = (flags: Record<string, unknown>, env: NodeJS.ProcessEnv, file?: Record<string, unknown>) =>
    resolveCliSettings({ flags: { notify: flags } as SettingsInput, env, file: file as SettingsInput | undefined, fileDir: dir, cwd: dir });

  test('nothing configured: no notify', () => {
    assert.equal(resolveCliSettings({ flags: {}, env: {}, cwd: dir }).notify, undefined);
    assert.equal(resolveWith({}, {}, { notify: false }).notify, undefined);
  });

  test('flag > variable > file, field by field; the file keeps the fields no flag has', () => {
    const file = { notify: { webhook: { url: 'https://file.example/hook', secretFile: 'secret', retries: 5 }, events: ['cert_renewed'], expiringRatio: 0.25 } };
    const fromFile = notifyOptionsFrom(resolveWith({}, {}, file).notify);
    assert.deepEqual(fromFile, { webhook: { retries: 5, url: 'https://file.example/hook', secret: SECRET }, events: ['cert_renewed'], expiringRatio: 0.25 });
    const env = { CERTKEEPER_NOTIFY_WEBHOOK: 'https://env.example/hook', CERTKEEPER_NOTIFY_EVENTS: 'renewal_failing, cert_expiring' };
    const fromEnv = notifyOptionsFrom(resolveWith({}, env, file).notify);
    assert.deepEqual([fromEnv?.webhook && fromEnv.webhook.url, fromEnv?.webhook && fromEnv.webhook.retries, fromEnv?.events], ['https://env.example/hook', 5, ['renewal_failing', 'cert_expiring']]);
    const fromFlag = notifyOptionsFrom(resolveWith({ webhook: 'https://flag.example/hook', events: 'cert_expiring' }, env, file).notify);
    assert.deepEqual([fromFlag?.webhook && fromFlag.webhook.url, fromFlag?.events], ['https://flag.example/hook', ['cert_expiring']]);
  });

  test('the secret: --notify-secret-file (relative to the working directory) wins over CERTKEEPER_NOTIFY_SECRET, which wins over the file', async () => {
    await writeFile(join(dir, 'other'), 'other-secret-0123456789abcdef\n');
    const file = { notify: { webhook: { url: 'https://file.example/hook', secret: 'file-secret-0123456789abcdef' } } };
    const secretOf = (flags: Record<string, unknown>, env: NodeJS.ProcessEnv): string | undefined => {
      const options = notifyOptionsFrom(resolveWith(flags, env, file).notify);
      return options?.webhook ? options.webhook.secret : undefined;
    };
    assert.equal(secretOf({}, {}), 'file-secret-0123456789abcdef');
    assert.equal(secretOf({}, { CERTKEEPER_NOTIFY_SECRET: SECRET }), SECRET);
    assert.equal(secretOf({ secretFile: 'other' }, { CERTKEEPER_NOTIFY_SECRET: SECRET }), 'other-secret-0123456789abcdef');
    assert.throws(() => resolveWith({}, { CERTKEEPER_NOTIFY_SECRET: SECRET, CERTKEEPER_NOTIFY_SECRET_FILE: 'secret' }, file), /either CERTKEEPER_NOTIFY_SECRET or CERTKEEPER_NOTIFY_SECRET_FILE/);
  });

  test('--notify-exec is split into argv without a shell; a bad event or URL is refused when the settings resolve', () => {
    const options = notifyOptionsFrom(resolveWith({ exec: `/usr/bin/page --team "web ops" 'a;b'` }, {}).notify);
    assert.deepEqual(options?.exec && options.exec.command, ['/usr/bin/page', '--team', 'web ops', 'a;b']);
    assert.throws(() => resolveWith({ exec: '/bin/true', events: 'cert_renewed,nope' }, {}), /--notify-events.*must list/);
    assert.throws(() => resolveWith({ webhook: 'ftp://x.example/', secretFile: 'secret' }, {}), /notify\.webhook\.url.*http: or https:/);
  });

  test('resolved settings hold no secret: not in JSON, not in inspect()', () => {
    const settings = resolveWith({ webhook: 'https://flag.example/hook' }, { CERTKEEPER_NOTIFY_SECRET: SECRET });
    assert.ok(!JSON.stringify(settings).includes(SECRET));
    assert.ok(!inspect(settings, { depth: 10 }).includes(SECRET));
    assert.equal(settings.notify?.webhook?.secretFrom, 'CERTKEEPER_NOTIFY_SECRET');
  });

  test('the flags are global options: accepted after any command', async () => {
    const help = await runCli(['--help']);
    for (const flag of ['--notify-webhook <url>', '--notify-secret-file <file>', '--notify-exec <command>', '--notify-events <list>', '--quiet']) {
      assert.ok(help.stdout.includes(flag), flag);
    }
    assert.ok(!/--notify-secret\s/.test(help.stdout), 'no flag takes the secret itself');
    const listed = await runCli(['list', '--notify-exec', '/bin/true', '--storage', join(dir, 'absent')]);
    // The notify flags parse; the command then fails on the storage that does not exist, as without them.
    assert.equal(listed.code, 2);
    assert.match(listed.stderr, /absent/);
  });
});
