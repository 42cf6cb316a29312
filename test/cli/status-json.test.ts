/**
 * `certkeeper list --json` and `certkeeper status <name> --json` carry the
 * status page's fields, with the same values the running keeper reports.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CertKeeper } from '../../src/manager/keeper.js';
import type { StatusEntry } from '../../src/http/status-report.js';
import { FileStorage } from '../../src/storage/file.js';
import { silentLogger } from '../helpers/logging.js';
import { runCli } from './helpers.js';

const FIELDS: (keyof StatusEntry)[] = ['names', 'source', 'state', 'issuer', 'profile', 'notBefore', 'notAfter', 'serialNumber', 'expiresInSeconds', 'lifetimeLeft', 'nextRenewalAt', 'nextRenewalReason', 'ariWindow', 'failures', 'lastError', 'certFile'];
const COMPARED: (keyof StatusEntry)[] = ['names', 'source', 'state', 'issuer', 'notBefore', 'notAfter', 'serialNumber', 'nextRenewalAt', 'nextRenewalReason', 'failures'];

describe('list --json and status --json', () => {
  let dir: string;
  let report: StatusEntry[];
  let env: NodeJS.ProcessEnv;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-cli-status-'));
    const keeper = new CertKeeper({
      storage: new FileStorage({ root: dir }),
      issuers: [{ type: 'internal' }],
      challenges: { http01: { listener: false }, tlsAlpn01: false },
      renewalPacing: false,
      logger: silentLogger(),
    });
    try {
      await keeper.manageSync(['one.cli-status.test', ['two.cli-status.test', 'www.two.cli-status.test']]);
      report = keeper.statusReport().certificates;
    } finally {
      await keeper.close();
    }
    env = { CERTKEEPER_STORAGE: dir, CERTKEEPER_LOG_LEVEL: 'silent' };
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const pick = (entry: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(COMPARED.map((k) => [k, entry[k] ?? null]));

  test('list --json: every status page field, the same values as keeper.statusReport()', async () => {
    const result = await runCli(['list', '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    const listed = JSON.parse(result.stdout) as Record<string, unknown>[];
    assert.equal(listed.length, 2);
    for (const entry of listed) {
      for (const field of FIELDS.filter((f) => f !== 'ariWindow' && f !== 'certFile' && f !== 'lastError')) assert.ok(field in entry, field);
      assert.ok('name' in entry && 'daysLeft' in entry && 'keyType' in entry, 'earlier fields kept');
    }
    const byName = (entries: Record<string, unknown>[]) => entries.map(pick).sort((a, b) => String(a.names).localeCompare(String(b.names)));
    assert.deepEqual(byName(listed), byName(report as unknown as Record<string, unknown>[]));
  });

  test('status <name> --json: the newest stored set covering the name; an unknown name fails', async () => {
    const result = await runCli(['status', 'www.two.cli-status.test', '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    const entry = JSON.parse(result.stdout) as Record<string, unknown>;
    assert.deepEqual(pick(entry), pick(report.find((c) => c.names.includes('www.two.cli-status.test')) as unknown as Record<string, unknown>));
    assert.equal(entry.nextRenewalReason, 'lifetime');
    const text = await runCli(['status', 'one.cli-status.test'], env);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^names: +one\.cli-status\.test$/m);
    assert.match(text.stdout, /^next renewal: .*\(lifetime\)$/m);
    const missing = await runCli(['status', 'absent.cli-status.test', '--json'], env);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /no stored certificate covers absent\.cli-status\.test/);
  });
});
