/**
 * Defect: ExecDnsProvider put the hook's stderr verbatim in its errors. A hook
 * running `curl -v` with `Authorization: Bearer $TOKEN` (the token from the
 * provider's own env) leaked the token into the error, the cert_failed event,
 * status().lastError and the logs. A real hook script prints such output here.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { ExecDnsProvider } from '../../src/dns/exec.js';
import { DnsProviderError } from '../../src/errors.js';
import { CertKeeper } from '../../src/manager/keeper.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { captureLogger } from '../helpers/logging.js';
import { startPebble, type PebbleHandle } from '../helpers/pebble.js';
import { skipUnlessInstalled } from '../helpers/system.js';

const token = `tok_${randomBytes(18).toString('hex')}`;
const password = `pw-${randomBytes(12).toString('base64url')}`;
const secrets = [token, password, encodeURIComponent(password)];

/** Every text an error exposes: message, stack, cause chain, own fields, inspect(). */
function errorTexts(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 10; depth++) {
    if (current instanceof Error) parts.push(current.message, current.stack ?? '', JSON.stringify({ ...current }));
    else parts.push(String(current));
    current = (current as { cause?: unknown }).cause;
  }
  parts.push(inspect(error, { depth: 10 }));
  return parts.join('\n');
}

function assertClean(text: string, where: string): void {
  for (const secret of secrets) assert.ok(!text.includes(secret), `${where} holds a secret: ${text.slice(0, 2000)}`);
  assert.ok(!text.includes('PRIVATE KEY-----\nMII'), `${where} holds a private key`);
}

let dir: string;
let hook: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'certkeeper-exec-redact-'));
  hook = join(dir, 'curl-hook.sh');
  // What `curl -v -H "Authorization: Bearer $TOKEN" ...` and a chatty script print, then a failure.
  await writeFile(
    hook,
    `#!/bin/sh
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30; do echo "* noise line $i" >&2; done
echo "> POST /v1/zones/example.test/records HTTP/1.1" >&2
echo "> Host: dns.example.test" >&2
echo "> Authorization: Bearer $TOKEN" >&2
echo "> Cookie: session=$TOKEN" >&2
echo "> X-Api-Key: $TOKEN" >&2
echo "* url https://admin:$API_PASSWORD@dns.example.test/?token=$TOKEN&password=$API_PASSWORD" >&2
echo '{"password": "'"$API_PASSWORD"'", "id": 7}' >&2
echo "raw token: $TOKEN" >&2
printf '%s\\n' '-----BEGIN PRIVATE KEY-----' 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7' '-----END PRIVATE KEY-----' >&2
echo "< HTTP/1.1 401 Unauthorized" >&2
echo "error: the API refused the update" >&2
exit 1
`,
  );
  await chmod(hook, 0o755);
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('ExecDnsProvider redacts its hook output', () => {
  test('the error holds neither env values nor credential-shaped output, and only a short tail', async () => {
    const provider = new ExecDnsProvider({ command: hook, env: { TOKEN: token, API_PASSWORD: password, ZONE_ID: '7' } });
    const error = await provider.addTxtRecord({ name: '_acme-challenge.example.test', value: 'txt-value', ttl: 60 }).then(
      () => assert.fail('the hook fails'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof DnsProviderError);
    assert.equal(error.reason, 'exit 1');
    assertClean(errorTexts(error), 'the error');
    assert.match(error.message, /the API refused the update$/, 'the end of stderr, where the cause is, is kept');
    assert.ok(!error.message.includes('noise line 1\n'), 'the start of long output is left out');
    assert.ok(error.message.split('\n').length <= 12, `a short tail: ${error.message.split('\n').length} lines`);
  });
});

describe('through the keeper: event, status and logs', { skip: skipUnlessInstalled('pebble', 'pebble-challtestsrv') }, () => {
  let pebble: PebbleHandle;
  before(async () => {
    pebble = await startPebble();
  });
  after(async () => {
    await pebble?.stop();
  });

  test('cert_failed, status().lastError, ManageError and trace logs hold no secret', { timeout: 60_000 }, async () => {
    const { logger, text } = captureLogger('trace');
    const provider = new ExecDnsProvider({ command: hook, env: { TOKEN: token, API_PASSWORD: password }, logger });
    const keeper = new CertKeeper({
      ca: pebble.directoryUrl,
      caCertificates: pebble.pebbleCaPem,
      agreeToTerms: true,
      storage: new MemoryStorage(),
      challenges: { http01: false, tlsAlpn01: false, dns01: { provider } },
      logger,
    });
    const events: unknown[] = [];
    keeper.on('cert_failed', (e) => events.push(e));
    try {
      const error = await keeper.manageSync(['hook.example.test']).then(() => assert.fail('the hook fails'), (e: unknown) => e);
      assertClean(errorTexts(error), 'the ManageError');
      assert.equal(events.length, 1);
      assertClean(inspect(events, { depth: 10 }) + errorTexts((events[0] as { error: unknown }).error), 'the cert_failed event');
      const status = keeper.status('hook.example.test');
      assert.equal(status.lastError?.code, 'ERR_DNS_PROVIDER');
      assert.match(status.lastError?.message ?? '', /the API refused the update/);
      assertClean(JSON.stringify(status), 'status()');
    } finally {
      await keeper.close();
    }
    const logs = text();
    assert.match(logs, /the API refused the update/, 'the failure was logged');
    assertClean(logs, 'the logs');
  });
});
