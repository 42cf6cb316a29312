/**
 * Notifications against a real local HTTP receiver (signature checked as a
 * receiver would) and a real exec hook; a receiver that is down, failing or
 * hanging; once per process and once per fleet through shared storage.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CertKeeper } from '../../src/manager/keeper.js';
import { InvalidOptionError, NotificationError } from '../../src/errors.js';
import { TypedEmitter, type CertObtainedEvent, type NotificationFailedEvent } from '../../src/events.js';
import { signNotification, verifyNotificationSignature } from '../../src/notify/deliver.js';
import { Notifier } from '../../src/notify/notifier.js';
import { resolveNotify, type NotifyOptions } from '../../src/notify/options.js';
import { FileStorage } from '../../src/storage/file.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { FencedWrite } from '../../src/storage/types.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { systemClock } from '../../src/clock.js';
import { captureLogger, silentLogger } from '../helpers/logging.js';
import { waitUntil } from '../faults/helpers.js';
import { startReceiver, type Receiver } from './receiver.js';

const SECRET = 'test-webhook-secret-0123456789';
const DAY = 86_400_000;

function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function internalKeeper(notify: NotifyOptions, extra: Partial<ConstructorParameters<typeof CertKeeper>[0]> = {}): CertKeeper {
  return new CertKeeper({
    storage: new MemoryStorage(),
    issuers: [{ type: 'internal' }],
    challenges: { http01: { listener: false }, tlsAlpn01: false },
    renewalPacing: false,
    logger: silentLogger(),
    notify,
    ...extra,
  });
}

function renewedEvent(serialNumber: string): CertObtainedEvent {
  return { names: ['fleet.example.test'], issuer: 'internal-local', renewal: true, notBefore: new Date(0), notAfter: new Date(90 * DAY), serialNumber, renewalReason: 'lifetime', replacedEarlyByAri: false };
}

describe('notify: webhook and exec hook', () => {
  let receiver: Receiver;
  let dir: string;
  before(async () => {
    receiver = await startReceiver(SECRET);
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-notify-'));
  });
  after(async () => {
    await receiver?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a renewal is POSTed signed (HMAC-SHA256 over timestamp.body) and run through the exec hook with argv, no shell', async () => {
    receiver.deliveries.length = 0;
    const hook = join(dir, 'hook.mjs');
    await writeFile(hook, "import { writeFileSync } from 'node:fs';\nlet d = '';\nprocess.stdin.setEncoding('utf8').on('data', (c) => (d += c)).on('end', () => writeFileSync(`${process.argv[2]}-${process.env.CERTKEEPER_NOTIFICATION}`, d));\n");
    // Shell syntax in an argument stays a literal file name: no shell ever parses it.
    const target = join(dir, 'out $(touch pwned) ;x');
    const keeper = internalKeeper({
      webhook: { url: receiver.url, secret: SECRET },
      exec: { command: [process.execPath, hook, target] },
    });
    try {
      await keeper.manageSync(['renew.notify.test']);
      const status = await keeper.renew('renew.notify.test', { force: true });
      await waitUntil(() => receiver.deliveries.length === 1 && existsSync(`${target}-cert_renewed`), 'webhook and hook delivered');
      const [delivery] = receiver.deliveries;
      assert.ok(delivery);
      assert.equal(delivery.signatureValid, true);
      assert.match(String(delivery.headers['x-certkeeper-signature']), /^sha256=[0-9a-f]{64}$/);
      assert.equal(delivery.headers['x-certkeeper-event'], 'cert_renewed');
      assert.equal(delivery.headers['content-type'], 'application/json');
      assert.deepEqual(
        { type: delivery.json.type, names: delivery.json.names, serialNumber: delivery.json.serialNumber, renewalReason: delivery.json.renewalReason, source: delivery.json.source },
        { type: 'cert_renewed', names: ['renew.notify.test'], serialNumber: status.serialNumber, renewalReason: 'forced', source: 'managed' },
      );
      assert.equal(delivery.headers['x-certkeeper-delivery'], delivery.json.key);
      const fromHook = JSON.parse(await readFile(`${target}-cert_renewed`, 'utf8')) as Record<string, unknown>;
      assert.deepEqual(fromHook, delivery.json);
      assert.equal(existsSync(join(dir, 'pwned')), false);
      assert.ok(!delivery.body.includes('PRIVATE KEY'), 'no key material in the payload');
      // The signature covers the timestamp: the same body with another time, or another body, fails.
      const timestamp = String(delivery.headers['x-certkeeper-timestamp']);
      const signature = String(delivery.headers['x-certkeeper-signature']);
      assert.equal(verifyNotificationSignature({ secret: SECRET, body: delivery.body, signature, timestamp: String(Number(timestamp) + 1) }), false);
      assert.equal(verifyNotificationSignature({ secret: SECRET, body: `${delivery.body} `, signature, timestamp }), false);
      assert.equal(verifyNotificationSignature({ secret: SECRET, body: delivery.body, signature, timestamp, now: (Number(timestamp) + 3600) * 1000 }), false, 'a replay an hour later');
      assert.equal(verifyNotificationSignature({ secret: 'another-secret-0123456789', body: delivery.body, signature, timestamp }), false);
    } finally {
      await keeper.close();
    }
  });

  test('a receiver that is down: bounded retries, ERR_NOTIFY logged and emitted, keeper unharmed, neither secret nor URL path logged', async () => {
    const port = await closedPort();
    const { logger, text } = captureLogger();
    const failures: NotificationFailedEvent[] = [];
    const keeper = internalKeeper({ webhook: { url: `http://127.0.0.1:${port}/hooks/TOKEN-IN-PATH`, secret: SECRET, retries: 2, retryDelayMs: 5 } }, { logger });
    keeper.on('notification_failed', (event) => failures.push(event));
    try {
      await keeper.manageSync(['down.notify.test']);
      await keeper.renew('down.notify.test', { force: true });
      await waitUntil(() => failures.length === 1, 'notification_failed');
      const error = failures[0]?.error;
      assert.ok(error instanceof NotificationError);
      assert.equal(error.code, 'ERR_NOTIFY');
      assert.equal(error.attempts, 3);
      assert.match(error.message, /ECONNREFUSED/);
      assert.equal(failures[0]?.type, 'cert_renewed');
      // Still serving and renewing.
      assert.equal((await keeper.renew('down.notify.test', { force: true })).state, 'valid');
      await waitUntil(() => failures.length === 2, 'second notification_failed');
      const logs = text();
      assert.equal(logs.split('\n').filter((l) => l.includes('"notification attempt failed; retrying"')).length, 4, 'two retries per notification');
      assert.match(logs, /"code":"ERR_NOTIFY"/);
      assert.ok(!logs.includes(SECRET), 'secret not logged');
      assert.ok(!logs.includes('TOKEN-IN-PATH'), 'URL path not logged');
    } finally {
      await keeper.close();
    }
  });

  test('HTTP 500 is retried up to the limit, 401 is not retried, a hanging receiver times out', async () => {
    const failures: NotificationFailedEvent[] = [];
    const emitter = new TypedEmitter();
    const run = async (respond: Receiver['respond'], options: { timeoutMs?: number } = {}): Promise<{ requests: number; error: NotificationError }> => {
      receiver.requests = 0;
      receiver.respond = respond;
      failures.length = 0;
      const notifier = new Notifier({
        config: resolveNotify({ webhook: { url: receiver.url, secret: SECRET, retries: 2, retryDelayMs: 1, ...options }, shareThroughStorage: false }) as never,
        on: (event, listener) => emitter.on(event, listener),
        emit: (failure) => failures.push(failure),
        storage: new MemoryStorage(),
        clock: systemClock,
        logger: silentLogger(),
      });
      emitter.emit('cert_renewed', renewedEvent(`serial-${Math.random()}`));
      await notifier.idle();
      await notifier.close();
      return { requests: receiver.requests, error: failures[0]?.error as NotificationError };
    };
    try {
      const failing = await run(() => 500);
      assert.equal(failing.requests, 3);
      assert.equal(failing.error.attempts, 3);
      assert.match(failing.error.message, /HTTP 500/);
      const refused = await run(() => 401);
      assert.equal(refused.requests, 1);
      assert.match(refused.error.message, /HTTP 401/);
      const hanging = await run(() => 'hang', { timeoutMs: 200 });
      assert.equal(hanging.requests, 3);
      assert.match(hanging.error.message, /timed out after 200 ms/);
    } finally {
      receiver.respond = () => 204;
    }
  });

  test('once per process, and once per fleet through shared storage (FileStorage locks and markers)', async () => {
    receiver.deliveries.length = 0;
    const root = join(dir, 'fleet-storage');
    const make = (share: boolean) => {
      const emitter = new TypedEmitter();
      const notifier = new Notifier({
        config: resolveNotify({ webhook: { url: receiver.url, secret: SECRET }, shareThroughStorage: share }) as never,
        on: (event, listener) => emitter.on(event, listener),
        emit: () => {},
        // Each "process" has its own FileStorage object on the shared directory.
        storage: new FileStorage({ root }),
        clock: systemClock,
        logger: silentLogger(),
      });
      return { emitter, notifier };
    };
    const fleet = [make(true), make(true), make(true)];
    const event = renewedEvent('AA01');
    for (const { emitter } of fleet) {
      emitter.emit('cert_renewed', event);
      emitter.emit('cert_renewed', event);
    }
    await Promise.all(fleet.map(({ notifier }) => notifier.idle()));
    assert.equal(receiver.deliveries.length, 1, 'one delivery for three processes, each told twice');
    assert.equal((await readdir(join(root, 'notifications'))).length, 1, 'one marker');
    // A later process (a restart) finds the marker.
    const late = make(true);
    late.emitter.emit('cert_renewed', event);
    await late.notifier.idle();
    assert.equal(receiver.deliveries.length, 1);
    // Without shared markers each process sends once (and only once).
    const alone = [make(false), make(false)];
    for (const { emitter } of alone) {
      emitter.emit('cert_renewed', renewedEvent('BB02'));
      emitter.emit('cert_renewed', renewedEvent('BB02'));
    }
    await Promise.all(alone.map(({ notifier }) => notifier.idle()));
    assert.equal(receiver.deliveries.filter((d) => d.json.serialNumber === 'BB02').length, 2);
    for (const { notifier } of [...fleet, late, ...alone]) await notifier.close();
  });

  test('a renewal failing with 1/20 of the lifetime left, and a managed certificate expiring soon', async () => {
    receiver.deliveries.length = 0;
    const clock = new FakeClock(Date.now());
    receiver.now = () => clock.now();
    let failWrites = false;
    const storage = new (class extends MemoryStorage {
      override async store(key: string, value: Uint8Array): Promise<void> {
        if (failWrites && key.includes('failing.notify.test')) throw new Error('disk full');
        return super.store(key, value);
      }

      override async writeFenced(lock: string, writes: readonly FencedWrite[]): Promise<void> {
        if (failWrites && writes.some((w) => w.key.includes('failing.notify.test'))) throw new Error('disk full');
        return super.writeFenced(lock, writes);
      }
    })();
    const keeper = new CertKeeper({
      storage,
      issuers: [{ type: 'internal', leafLifetimeMs: 6 * DAY }],
      challenges: { http01: { listener: false }, tlsAlpn01: false },
      renewalPacing: false,
      logger: silentLogger(),
      clock,
      notify: { webhook: { url: receiver.url, secret: SECRET, retries: 0 }, events: ['renewal_failing', 'cert_expiring'] },
    });
    try {
      await keeper.manageSync(['failing.notify.test']);
      const { notBefore, notAfter, serialNumber } = keeper.status('failing.notify.test');
      failWrites = true;
      const lifetime = notAfter!.getTime() - notBefore!.getTime();
      // 1/10 of the lifetime left: expiring soon (< 1/5), not yet an emergency. The hourly check sees it.
      await clock.set(notAfter!.getTime() - lifetime / 10);
      await clock.advance(60 * 60 * 1000);
      await waitUntil(() => receiver.deliveries.some((d) => d.json.type === 'cert_expiring'), 'cert_expiring');
      assert.equal(receiver.deliveries.filter((d) => d.json.type === 'renewal_failing').length, 0, 'failures before 1/20 left are not notified');
      // 1/40 left: the next failed renewal is in the emergency window.
      await clock.set(notAfter!.getTime() - lifetime / 40);
      await assert.rejects(keeper.renew('failing.notify.test', { force: true }));
      await assert.rejects(keeper.renew('failing.notify.test', { force: true }));
      await waitUntil(() => receiver.deliveries.some((d) => d.json.type === 'renewal_failing'), 'renewal_failing');
      await clock.advance(3 * 60 * 60 * 1000);
      await new Promise((r) => setTimeout(r, 100));
      const byType = (type: string) => receiver.deliveries.filter((d) => d.json.type === type);
      assert.equal(byType('cert_expiring').length, 1, 'expiring sent once');
      assert.equal(byType('renewal_failing').length, 1, 'failing sent once for the certificate, however many failures');
      const failing = byType('renewal_failing')[0]?.json;
      assert.equal(failing?.serialNumber, serialNumber);
      assert.ok((failing?.error as { message: string }).message.endsWith('disk full'), 'the failure as the storage reported it (wrapped by the pre-order storage check)');
      assert.equal(byType('cert_expiring')[0]?.json.source, 'managed');
      assert.ok(receiver.deliveries.every((d) => d.signatureValid), 'signed with the keeper\'s clock');
    } finally {
      receiver.now = Date.now;
      await keeper.close();
    }
  });

  test('options are validated: a sink is required, the secret is long enough and never echoed, the hook is argv', () => {
    assert.throws(() => resolveNotify({}), InvalidOptionError);
    assert.throws(() => resolveNotify({ webhook: { url: 'ftp://x', secret: SECRET } }), /notify\.webhook\.url/);
    assert.throws(() => resolveNotify({ webhook: { url: 'https://user:pw@x.test/', secret: SECRET } }), /credentials/);
    assert.throws(() => resolveNotify({ webhook: { url: 'https://x.test/', secret: 'short-secret' } }), (e: Error) => /notify\.webhook\.secret/.test(e.message) && !e.message.includes('short-secret'));
    assert.throws(() => resolveNotify({ exec: { command: 'notify.sh --all' as never } }), /notify\.exec\.command/);
    assert.throws(() => resolveNotify({ exec: { command: ['x'] }, events: ['nope' as never] }), /notify\.events/);
    assert.equal(resolveNotify(false), false);
    const resolved = resolveNotify({ exec: { command: ['/bin/true'] } });
    assert.ok(resolved && Object.isFrozen(resolved) && resolved.exec && resolved.exec.retries === 3);
    assert.equal(signNotification('k', 1, 'b'), signNotification('k', 1, 'b'));
  });
});
