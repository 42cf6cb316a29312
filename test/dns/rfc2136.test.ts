import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { inspect } from 'node:util';
import { pino } from 'pino';
import { systemClock } from '../../src/clock.js';
import { DnsProviderError, InvalidOptionError } from '../../src/errors.js';
import type { Logger } from '../../src/logger.js';
import { dnsQuery, txtValues } from '../../src/dns/query.js';
import { Rfc2136Provider } from '../../src/dns/rfc2136.js';
import { freeDnsPort, startBind, tsigKeygen, type BindHandle } from '../helpers/bind.js';
import { skipUnlessInstalled } from '../helpers/system.js';

const skip = skipUnlessInstalled('named', 'dig', 'tsig-keygen');

const secret256 = randomBytes(32).toString('base64');
const secret512 = randomBytes(64).toString('base64');
const secret1 = randomBytes(20).toString('base64');
const NAME = '_acme-challenge.example.test';

function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) }) as unknown as Logger;
  return { logger, lines };
}

describe('Rfc2136Provider against BIND9', { skip }, () => {
  let bind: BindHandle;
  let keyDir: string;
  let keyFilePath: string;

  before(async () => {
    keyDir = await mkdtemp(join(tmpdir(), 'certkeeper-tsig-'));
    keyFilePath = join(keyDir, 'filekey.key');
    await writeFile(keyFilePath, await tsigKeygen('filekey', 'hmac-sha256'));
    bind = await startBind({
      zones: [{ name: 'example.test' }, { name: 'locked.test', allowUpdate: false }],
      tsig: [
        { name: 'k256', algorithm: 'hmac-sha256', secret: secret256 },
        { name: 'k512', algorithm: 'hmac-sha512', secret: secret512 },
        { name: 'k1', algorithm: 'hmac-sha1', secret: secret1 },
      ],
      keyFiles: [{ path: keyFilePath, keyName: 'filekey' }],
    });
  });

  after(async () => {
    await bind?.stop();
    if (keyDir) await rm(keyDir, { recursive: true, force: true });
  });

  test('adds two values at one name and removes exactly one at a time', async () => {
    const provider = new Rfc2136Provider({ server: bind.server, keyName: 'k256', secret: secret256 });
    const name = `_acme-challenge.two.example.test`;
    await provider.addTxtRecord({ name, value: 'first-value', ttl: 60 });
    assert.deepEqual(await bind.txt(name), ['first-value']);
    await provider.addTxtRecord({ name, value: 'second-value', ttl: 60 });
    assert.deepEqual(await bind.txt(name), ['first-value', 'second-value']);
    // The query client of the propagation check sees the same.
    const result = await dnsQuery({ host: '127.0.0.1', port: bind.port }, name, 'TXT');
    assert.deepEqual(txtValues(result, name).sort(), ['first-value', 'second-value']);
    await provider.removeTxtRecord({ name, value: 'first-value', ttl: 60 });
    assert.deepEqual(await bind.txt(name), ['second-value']);
    await provider.removeTxtRecord({ name, value: 'second-value', ttl: 60 });
    assert.deepEqual(await bind.txt(name), []);
    // Removing a value that is gone is not an error (cleanup may run twice).
    await provider.removeTxtRecord({ name, value: 'second-value', ttl: 60 });
  });

  for (const [keyName, algorithm, secret] of [
    ['k512', 'hmac-sha512', secret512],
    ['k1', 'hmac-sha1', secret1],
  ] as const) {
    test(`${algorithm} keys work`, async () => {
      const provider = new Rfc2136Provider({ server: bind.server, zone: 'example.test', keyName, secret, algorithm });
      const name = `_acme-challenge.${keyName}.example.test`;
      await provider.addTxtRecord({ name, value: `by-${keyName}`, ttl: 60 });
      assert.deepEqual(await bind.txt(name), [`by-${keyName}`]);
      await provider.removeTxtRecord({ name, value: `by-${keyName}`, ttl: 60 });
      assert.deepEqual(await bind.txt(name), []);
    });
  }

  test('reads the key from a file written by tsig-keygen', async () => {
    const provider = new Rfc2136Provider({ server: { host: '127.0.0.1', port: bind.port }, keyFile: keyFilePath });
    const name = '_acme-challenge.file.example.test';
    await provider.addTxtRecord({ name, value: 'from-key-file', ttl: 60 });
    assert.deepEqual(await bind.txt(name), ['from-key-file']);
    await provider.removeTxtRecord({ name, value: 'from-key-file', ttl: 60 });
    assert.deepEqual(await bind.txt(name), []);
  });

  test('a wrong secret is BADSIG, changes nothing, and the secret is in no log line or error', async () => {
    const wrongSecret = randomBytes(32).toString('base64');
    const { logger, lines } = captureLogger();
    const provider = new Rfc2136Provider({ server: bind.server, keyName: 'k256', secret: wrongSecret, logger });
    const name = '_acme-challenge.badsig.example.test';
    const error = await provider.addTxtRecord({ name, value: 'must-not-appear', ttl: 60 }).then(
      () => assert.fail('expected a DnsProviderError'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof DnsProviderError);
    assert.equal(error.code, 'ERR_DNS_PROVIDER');
    assert.equal(error.reason, 'BADSIG');
    assert.match(error.message, /rejected the TSIG signature/);
    assert.deepEqual(await bind.txt(name), []);
    for (const text of [error.message, inspect(error), JSON.stringify(error), inspect(provider), JSON.stringify(provider), ...lines]) {
      assert.ok(!text.includes(wrongSecret), 'secret leaked');
      assert.ok(!text.includes(Buffer.from(wrongSecret, 'base64').toString('hex')), 'secret leaked (hex)');
    }
  });

  test('the secret is in no log line of a successful update either', async () => {
    const { logger, lines } = captureLogger();
    const provider = new Rfc2136Provider({ server: bind.server, keyName: 'k256', secret: secret256, logger });
    await provider.addTxtRecord({ name: NAME, value: 'logged', ttl: 60 });
    await provider.removeTxtRecord({ name: NAME, value: 'logged', ttl: 60 });
    assert.ok(lines.length >= 2, 'expected debug lines for add and remove');
    for (const line of lines) assert.ok(!line.includes(secret256));
  });

  test('a clock far from the server\'s is BADTIME', async () => {
    const skewed = { now: () => Date.now() - 3_600_000, setTimer: systemClock.setTimer };
    const provider = new Rfc2136Provider({ server: bind.server, keyName: 'k256', secret: secret256, clock: skewed });
    const name = '_acme-challenge.badtime.example.test';
    await assert.rejects(provider.addTxtRecord({ name, value: 'late', ttl: 60 }), (e: unknown) => {
      assert.ok(e instanceof DnsProviderError);
      assert.equal(e.reason, 'BADTIME');
      assert.match(e.message, /clock/);
      return true;
    });
    assert.deepEqual(await bind.txt(name), []);
  });

  test('an unknown key name is BADKEY', async () => {
    const provider = new Rfc2136Provider({ server: bind.server, keyName: 'nobody', secret: secret256 });
    await assert.rejects(provider.addTxtRecord({ name: NAME, value: 'x', ttl: 60 }), (e: unknown) => {
      assert.ok(e instanceof DnsProviderError);
      assert.equal(e.reason, 'BADKEY');
      assert.match(e.message, /does not know TSIG key "nobody"/);
      return true;
    });
  });

  test('a zone whose policy allows no update is REFUSED; a zone the server lacks is NOTAUTH', async () => {
    const provider = new Rfc2136Provider({ server: bind.server, keyName: 'k256', secret: secret256 });
    await assert.rejects(provider.addTxtRecord({ name: '_acme-challenge.locked.test', value: 'x', ttl: 60 }), (e: unknown) => {
      assert.ok(e instanceof DnsProviderError);
      assert.equal(e.reason, 'REFUSED');
      assert.match(e.message, /refused the update/);
      return true;
    });
    const elsewhere = new Rfc2136Provider({ server: bind.server, zone: 'other.test', keyName: 'k256', secret: secret256 });
    await assert.rejects(elsewhere.addTxtRecord({ name: '_acme-challenge.other.test', value: 'x', ttl: 60 }), (e: unknown) => {
      assert.ok(e instanceof DnsProviderError);
      assert.equal(e.reason, 'NOTAUTH');
      return true;
    });
    // Without a zone option the SOA lookup fails first, with a hint.
    await assert.rejects(provider.addTxtRecord({ name: '_acme-challenge.other.test', value: 'x', ttl: 60 }), (e: unknown) => {
      assert.ok(e instanceof DnsProviderError);
      assert.equal(e.reason, 'ZONE_NOT_FOUND');
      assert.match(e.message, /set the zone option/);
      return true;
    });
  });

  test('a name outside the configured zone is rejected before sending', async () => {
    const provider = new Rfc2136Provider({ server: bind.server, zone: 'example.test', keyName: 'k256', secret: secret256 });
    await assert.rejects(provider.addTxtRecord({ name: '_acme-challenge.locked.test', value: 'x', ttl: 60 }), { reason: 'NOTZONE' });
  });

  test('a large update goes over TCP, a small one over UDP', async () => {
    const { logger, lines } = captureLogger();
    const provider = new Rfc2136Provider({ server: bind.server, keyName: 'k256', secret: secret256, logger });
    const name = '_acme-challenge.large.example.test';
    const big = 'v'.repeat(700); // several character-strings, message over 512 bytes
    await provider.addTxtRecord({ name, value: 'small', ttl: 60 });
    await provider.addTxtRecord({ name, value: big, ttl: 60 });
    assert.deepEqual(await bind.txt(name), ['small', big].sort());
    const transports = lines.map((l) => JSON.parse(l) as { transport?: string }).map((l) => l.transport);
    assert.deepEqual(transports, ['udp', 'tcp']);
    await provider.removeTxtRecord({ name, value: big, ttl: 60 });
    await provider.removeTxtRecord({ name, value: 'small', ttl: 60 });
    assert.deepEqual(await bind.txt(name), []);
  });

  test('a truncated UDP answer makes the update retry over TCP', async () => {
    // UDP answers with TC set; TCP is relayed to BIND, which applies the update.
    const proxy = await startProxy(bind.port, (request) => {
      const reply = Buffer.from(request.subarray(0, 12));
      reply.writeUInt16BE(request.readUInt16BE(2) | 0x8000 | 0x0200, 2);
      reply.fill(0, 4, 12);
      return reply;
    });
    try {
      const { logger, lines } = captureLogger();
      const provider = new Rfc2136Provider({ server: `127.0.0.1:${proxy.port}`, zone: 'example.test', keyName: 'k256', secret: secret256, logger });
      const name = '_acme-challenge.tc.example.test';
      await provider.addTxtRecord({ name, value: 'via-tcp', ttl: 60 });
      assert.deepEqual(await bind.txt(name), ['via-tcp']);
      assert.equal((JSON.parse(lines.at(-1) ?? '{}') as { transport?: string }).transport, 'tcp');
      await provider.removeTxtRecord({ name, value: 'via-tcp', ttl: 60 });
      assert.equal(proxy.tcpConnections(), 2);
    } finally {
      await proxy.close();
    }
  });

  test('SERVFAIL from the server is a typed error naming it', async () => {
    const proxy = await startProxy(bind.port, (request) => {
      const reply = Buffer.from(request.subarray(0, 12));
      reply.writeUInt16BE((request.readUInt16BE(2) & ~0x000f) | 0x8000 | 2, 2); // QR set, rcode 2 (SERVFAIL)
      reply.fill(0, 4, 12);
      return reply;
    });
    try {
      const provider = new Rfc2136Provider({ server: `127.0.0.1:${proxy.port}`, zone: 'example.test', keyName: 'k256', secret: secret256 });
      await assert.rejects(provider.addTxtRecord({ name: NAME, value: 'x', ttl: 60 }), (e: unknown) => {
        assert.ok(e instanceof DnsProviderError);
        assert.equal(e.reason, 'SERVFAIL');
        assert.match(e.message, /failed while applying the update/);
        return true;
      });
    } finally {
      await proxy.close();
    }
  });

  test('a response whose TSIG MAC does not verify is rejected', async () => {
    // Relay UDP to BIND and flip the RD bit of its signed answer.
    const proxy = await startProxy(bind.port, undefined, (response) => {
      const tampered = Buffer.from(response);
      tampered.writeUInt16BE(tampered.readUInt16BE(2) ^ 0x0100, 2);
      return tampered;
    });
    try {
      const provider = new Rfc2136Provider({ server: `127.0.0.1:${proxy.port}`, zone: 'example.test', keyName: 'k256', secret: secret256 });
      const name = '_acme-challenge.tamper.example.test';
      await assert.rejects(provider.addTxtRecord({ name, value: 'tampered', ttl: 60 }), (e: unknown) => {
        assert.ok(e instanceof DnsProviderError);
        assert.equal(e.reason, 'BADSIG');
        assert.match(e.message, /failed the TSIG check/);
        return true;
      });
      // The real server did apply it; clean up directly.
      const direct = new Rfc2136Provider({ server: bind.server, keyName: 'k256', secret: secret256 });
      await direct.removeTxtRecord({ name, value: 'tampered', ttl: 60 });
    } finally {
      await proxy.close();
    }
  });

  test('a silent server times out with a typed error', async () => {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
    try {
      const provider = new Rfc2136Provider({ server: `127.0.0.1:${socket.address().port}`, zone: 'example.test', keyName: 'k256', secret: secret256, timeoutMs: 200 });
      await assert.rejects(provider.addTxtRecord({ name: NAME, value: 'x', ttl: 60 }), { code: 'ERR_DNS_PROVIDER', reason: 'TIMEOUT' });
    } finally {
      socket.close();
    }
  });
});

describe('Rfc2136Provider options', () => {
  test('rejects missing or conflicting key options, naming the option, without echoing the secret', () => {
    assert.throws(() => new Rfc2136Provider({ server: '127.0.0.1:53', secret: secret256 }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'keyName');
    assert.throws(() => new Rfc2136Provider({ server: '127.0.0.1:53', keyName: 'k' }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'secret');
    assert.throws(
      () => new Rfc2136Provider({ server: '127.0.0.1:53', keyName: 'k', secret: 'not base64 !!', algorithm: 'hmac-sha256' }),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'secret' && !e.message.includes('not base64 !!'),
    );
    assert.throws(
      () => new Rfc2136Provider({ server: '127.0.0.1:53', keyName: 'k', secret: secret256, algorithm: 'hmac-md5' as never }),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'algorithm',
    );
    assert.throws(() => new Rfc2136Provider({ server: 'host:99999', keyName: 'k', secret: secret256 }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'server');
    assert.throws(
      () => new Rfc2136Provider({ server: '127.0.0.1', keyName: 'k', secret: secret256, timeoutMs: 0 }),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'timeoutMs',
    );
  });

  test('inspect and JSON show the key name, never the secret', () => {
    const provider = new Rfc2136Provider({ server: '127.0.0.1', keyName: 'k256', secret: secret256 });
    for (const text of [inspect(provider), JSON.stringify(provider), inspect(provider, { showHidden: true, depth: 10 })]) {
      assert.match(text, /k256/);
      assert.ok(!text.includes(secret256));
    }
    assert.ok(!Object.values(provider).some((v) => typeof v === 'string' && v.includes(secret256)));
  });
});

interface Proxy {
  port: number;
  tcpConnections(): number;
  close(): Promise<void>;
}

/**
 * A UDP+TCP relay to a BIND port. `answerUdp` replaces the relay for UDP (reply
 * computed locally); `rewriteUdpReply` changes BIND's UDP reply. TCP is relayed as is.
 */
async function startProxy(
  targetPort: number,
  answerUdp?: (request: Buffer) => Buffer,
  rewriteUdpReply?: (response: Buffer) => Buffer,
): Promise<Proxy> {
  const port = await freeDnsPort();
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((client) => {
    connections++;
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const destroy = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', destroy).on('close', destroy);
    upstream.on('error', destroy).on('close', destroy);
  });
  await new Promise<void>((resolve) => tcp.listen(port, '127.0.0.1', () => resolve()));
  const udp = dgram.createSocket('udp4');
  udp.on('message', (request, from) => {
    if (answerUdp) {
      udp.send(answerUdp(request), from.port, from.address);
      return;
    }
    const upstream = dgram.createSocket('udp4');
    upstream.on('message', (response) => {
      udp.send(rewriteUdpReply ? rewriteUdpReply(response) : response, from.port, from.address);
      upstream.close();
    });
    upstream.send(request, targetPort, '127.0.0.1');
  });
  await new Promise<void>((resolve) => udp.bind(port, '127.0.0.1', () => resolve()));
  return {
    port,
    tcpConnections: () => connections,
    async close() {
      for (const s of sockets) s.destroy();
      udp.close();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}
