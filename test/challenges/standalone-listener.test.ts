import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { StandaloneListener } from '../../src/challenges/standalone-listener.js';

function listener(port = 0): StandaloneListener {
  return new StandaloneListener({
    challenge: 'TEST-01',
    createServer: () => net.createServer((socket) => socket.end('hi\n')),
    port,
    defaultPort: 1,
    portOption: 'test.port',
    host: '127.0.0.1',
  });
}

function connect(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' }, () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
}

describe('StandaloneListener', () => {
  test('open while any holder holds it; holding twice is holding once; the last release closes', async () => {
    const shared = listener();
    try {
      assert.equal(shared.address(), undefined);
      await Promise.all([shared.hold('a'), shared.hold('b'), shared.hold('a')]);
      const port = shared.address()?.port;
      assert.ok(port);
      await shared.release('a');
      assert.equal(shared.address()?.port, port, 'b still holds it');
      await connect(port);
      await shared.release('unknown');
      assert.equal(shared.address()?.port, port, 'an unknown holder releases nothing');
      await shared.release('b');
      assert.equal(shared.address(), undefined);
      await assert.rejects(connect(port), { code: 'ECONNREFUSED' });
      await shared.hold('c');
      assert.ok(shared.address(), 'opens again for a new holder');
    } finally {
      await shared.close();
    }
    assert.equal(shared.address(), undefined);
  });

  test('close() is idempotent, closes a held server, cuts open connections, and refuses new holders', async () => {
    const shared = listener();
    await shared.hold('a');
    const port = shared.address()?.port;
    assert.ok(port);
    const socket = net.connect({ port, host: '127.0.0.1' });
    await new Promise((resolve) => socket.once('connect', resolve));
    const first = shared.close();
    assert.equal(shared.close(), first);
    await shared[Symbol.asyncDispose]();
    await first;
    assert.equal(shared.address(), undefined);
    await assert.rejects(connect(port), { code: 'ECONNREFUSED' });
    await assert.rejects(shared.hold('b'), { code: 'ERR_CLOSED' });
    await shared.release('a');
    socket.destroy();
  });

  test('a port that is taken rejects with ERR_CHALLENGE_FAILED and holds nothing', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const shared = listener((blocker.address() as net.AddressInfo).port);
    try {
      await assert.rejects(shared.hold('a'), { code: 'ERR_CHALLENGE_FAILED' });
      assert.equal(shared.address(), undefined);
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
      await shared.hold('a');
      assert.ok(shared.address(), 'a later hold binds once the port is free');
    } finally {
      await shared.close();
      if (blocker.listening) blocker.close();
    }
  });

  test('the port option is validated once, with the option named', () => {
    assert.throws(() => listener(70_000), { code: 'ERR_INVALID_OPTION', message: /test\.port/ });
  });
});
