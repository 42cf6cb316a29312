import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CertExpiringEvent } from '../../src/events.js';
import { ExpiryWatch, type ExpiringSource } from '../../src/notify/expiry-watch.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

const DAY = 86_400_000;

function cert(serial: string, notBefore: number, lifetimeDays: number): ExpiringSource {
  return { names: [`${serial}.test`], issuer: 'ca', notBefore: new Date(notBefore), notAfter: new Date(notBefore + lifetimeDays * DAY), serialNumber: serial };
}

describe('ExpiryWatch', () => {
  test('note() of a loaded certificate reads only that one: no scan of every certificate per load', async () => {
    const clock = new FakeClock();
    const start = clock.now();
    const all = Array.from({ length: 1_000 }, (_, i) => cert(`s${i}`, start, 90 + i));
    let scans = 0;
    const emitted: CertExpiringEvent[] = [];
    const watch = new ExpiryWatch({ clock, ratio: 1 / 5, list: () => (scans++, all), emit: (e) => emitted.push(e) });
    for (const c of all) watch.note(c);
    assert.equal(scans, 0, 'note() must not call list()');
    assert.equal(emitted.length, 0);
    // The soonest crossing (s0: 90 days, 1/5 left = day 72) fires the one timer, which then scans once.
    await clock.advance(72 * DAY);
    assert.equal(scans, 1);
    assert.deepEqual(emitted.map((e) => e.serialNumber), ['s0']);
    await watch.close();
  });

  test('a note of a certificate already past its threshold announces it at once, and only once', async () => {
    const clock = new FakeClock();
    const old = cert('late', clock.now() - 80 * DAY, 90);
    const emitted: CertExpiringEvent[] = [];
    const watch = new ExpiryWatch({ clock, ratio: 1 / 5, list: () => [old], emit: (e) => emitted.push(e) });
    watch.note(old);
    watch.note(old);
    watch.check();
    assert.deepEqual(emitted.map((e) => [e.serialNumber, e.remainingMs]), [['late', 10 * DAY]]);
    await watch.close();
  });

  test('a later note with a sooner crossing moves the timer earlier; one with a later crossing does not', async () => {
    const clock = new FakeClock();
    const start = clock.now();
    const far = cert('far', start, 100);
    const near = cert('near', start, 10);
    const emitted: string[] = [];
    const watch = new ExpiryWatch({ clock, ratio: 1 / 5, list: () => [far, near], emit: (e) => emitted.push(e.serialNumber ?? '') });
    watch.note(far);
    watch.note(near);
    await clock.advance(8 * DAY);
    assert.deepEqual(emitted, ['near']);
    await clock.advance(72 * DAY);
    assert.deepEqual(emitted, ['near', 'far']);
    await watch.close();
  });
});
