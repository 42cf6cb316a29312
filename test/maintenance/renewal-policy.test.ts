import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CertificateInvalidError, InvalidOptionError } from '../../src/errors.js';
import {
  DEFAULT_RENEWAL_JITTER_RATIO,
  MAX_RENEWAL_JITTER_MS,
  emergencyTime,
  isEmergency,
  planRenewal,
  renewalDueTime,
  selectAriTime,
} from '../../src/renewal/renewal-policy.js';

const DAY = 24 * 60 * 60 * 1000;
const HOUR = 60 * 60 * 1000;
const T0 = Date.UTC(2026, 0, 1);
const cert90 = { notBefore: T0, notAfter: T0 + 90 * DAY };
const cert6 = { notBefore: T0, notAfter: T0 + 6 * DAY };
const noJitter = () => 0;
const maxJitter = () => 0.999999;

describe('renewalDueTime', () => {
  test('90-day certificate: due when 30 days (1/3) are left', () => {
    assert.equal(renewalDueTime({ ...cert90, random: noJitter }), T0 + 60 * DAY);
  });

  test('6-day certificate counts as short-lived: due when 3 days (1/2) are left', () => {
    assert.equal(renewalDueTime({ ...cert6, random: noJitter }), T0 + 3 * DAY);
  });

  test('exactly 10 days is short-lived, 11 days is not', () => {
    assert.equal(renewalDueTime({ notBefore: T0, notAfter: T0 + 10 * DAY, random: noJitter }), T0 + 5 * DAY);
    const eleven = renewalDueTime({ notBefore: T0, notAfter: T0 + 11 * DAY, random: noJitter });
    assert.equal(eleven, Math.floor(T0 + 11 * DAY - (11 * DAY) / 3));
  });

  test('a custom ratio is honoured', () => {
    assert.equal(renewalDueTime({ ...cert90, ratio: 0.5, random: noJitter }), T0 + 45 * DAY);
  });

  test('jitter only moves renewal earlier, by at most 5% of the window capped at one day', () => {
    const due90 = renewalDueTime({ ...cert90, random: maxJitter });
    assert.ok(due90 < T0 + 60 * DAY);
    assert.ok(due90 >= T0 + 60 * DAY - MAX_RENEWAL_JITTER_MS, '30-day window: 5% is 1.5 days, capped to 1 day');
    assert.ok(T0 + 60 * DAY - due90 > 0.99 * MAX_RENEWAL_JITTER_MS);

    const due6 = renewalDueTime({ ...cert6, random: maxJitter });
    const bound6 = 3 * DAY * DEFAULT_RENEWAL_JITTER_RATIO; // 3.6 hours
    assert.ok(due6 < T0 + 3 * DAY && due6 >= T0 + 3 * DAY - bound6, `${(T0 + 3 * DAY - due6) / HOUR} h`);
  });

  test('random jitter over many draws stays within bounds and spreads', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const due = renewalDueTime(cert90);
      assert.ok(due <= T0 + 60 * DAY && due >= T0 + 60 * DAY - MAX_RENEWAL_JITTER_MS);
      seen.add(due);
    }
    assert.ok(seen.size > 150, 'certificates issued together get different due times');
  });

  test('jitter 0 disables it', () => {
    assert.equal(renewalDueTime({ ...cert90, jitter: 0, random: maxJitter }), T0 + 60 * DAY);
  });

  test('invalid ratios and empty validity are rejected with typed errors', () => {
    assert.throws(() => renewalDueTime({ ...cert90, ratio: 0 }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'renewalWindowRatio');
    assert.throws(() => renewalDueTime({ ...cert90, ratio: 1 }), InvalidOptionError);
    assert.throws(() => renewalDueTime({ ...cert90, jitter: 1 }), InvalidOptionError);
    assert.throws(() => renewalDueTime({ notBefore: T0, notAfter: T0 }), CertificateInvalidError);
  });
});

describe('emergency', () => {
  test('1/20 of the lifetime left is an emergency', () => {
    const at = emergencyTime(cert90);
    assert.equal(at, T0 + 90 * DAY - 4.5 * DAY);
    assert.equal(isEmergency(cert90, at - 1), false);
    assert.equal(isEmergency(cert90, at), true);
    assert.equal(isEmergency(cert90, cert90.notAfter + DAY), true);
  });
});

describe('selectAriTime', () => {
  const window = { windowStart: T0 + 50 * DAY, windowEnd: T0 + 52 * DAY };

  test('uniform inside [start, end)', () => {
    assert.equal(selectAriTime(window, () => 0), window.windowStart);
    assert.equal(selectAriTime(window, () => 0.5), T0 + 51 * DAY);
    const last = selectAriTime(window, maxJitter);
    assert.ok(last !== undefined && last < window.windowEnd && last > T0 + 51.9 * DAY);
  });

  test('end <= start is no answer', () => {
    assert.equal(selectAriTime({ windowStart: T0 + 10, windowEnd: T0 + 10 }), undefined);
    assert.equal(selectAriTime({ windowStart: T0 + 10, windowEnd: T0 }), undefined);
    assert.equal(selectAriTime({ windowStart: Number.NaN, windowEnd: T0 }), undefined);
  });

  test('a previous selection inside the window is kept; outside it is redrawn', () => {
    assert.equal(selectAriTime(window, () => 0.9, T0 + 50.5 * DAY), T0 + 50.5 * DAY);
    assert.equal(selectAriTime(window, () => 0, T0 + 40 * DAY), window.windowStart);
  });
});

describe('planRenewal', () => {
  test('without ARI the lifetime rule decides', () => {
    const plan = planRenewal({ ...cert90, random: noJitter });
    assert.deepEqual(plan, { dueAt: T0 + 60 * DAY, source: 'lifetime', ariSelectedTime: undefined, emergencyAt: T0 + 85.5 * DAY });
  });

  test('ARI window in the past: due at once (a time already passed)', () => {
    const now = T0 + 20 * DAY;
    const plan = planRenewal({ ...cert90, ari: { windowStart: T0 + 5 * DAY, windowEnd: T0 + 6 * DAY }, random: () => 0.5 });
    assert.equal(plan.source, 'ari');
    assert.ok(plan.dueAt <= now, 'in the past, so the queue fires it immediately');
    assert.equal(plan.dueAt, T0 + 5.5 * DAY);
  });

  test('ARI earlier than the lifetime rule brings renewal forward', () => {
    const plan = planRenewal({ ...cert90, ari: { windowStart: T0 + 30 * DAY, windowEnd: T0 + 31 * DAY }, random: noJitter });
    assert.equal(plan.dueAt, T0 + 30 * DAY);
    assert.equal(plan.source, 'ari');
  });

  test('ARI later than the lifetime rule postpones it by default, but never past the emergency point', () => {
    const later = planRenewal({ ...cert90, ari: { windowStart: T0 + 70 * DAY, windowEnd: T0 + 71 * DAY }, random: noJitter });
    assert.equal(later.dueAt, T0 + 70 * DAY);
    const tooLate = planRenewal({ ...cert90, ari: { windowStart: T0 + 88 * DAY, windowEnd: T0 + 89 * DAY }, random: noJitter });
    assert.equal(tooLate.source, 'emergency');
    assert.equal(tooLate.dueAt, emergencyTime(cert90));
    assert.equal(tooLate.ariSelectedTime, T0 + 88 * DAY);
  });

  test('ariMayPostpone: false keeps the lifetime rule as a ceiling', () => {
    const plan = planRenewal({ ...cert90, ari: { windowStart: T0 + 70 * DAY, windowEnd: T0 + 71 * DAY }, random: noJitter, ariMayPostpone: false });
    assert.equal(plan.dueAt, T0 + 60 * DAY);
    assert.equal(plan.source, 'lifetime');
  });

  test('an inverted window falls back to the lifetime rule, never "renew now"', () => {
    const plan = planRenewal({ ...cert90, ari: { windowStart: T0 + 71 * DAY, windowEnd: T0 + 70 * DAY }, random: noJitter });
    assert.equal(plan.source, 'lifetime');
    assert.equal(plan.dueAt, T0 + 60 * DAY);
    assert.equal(plan.ariSelectedTime, undefined);
  });

  test('a persisted selection inside the window is reused', () => {
    const plan = planRenewal({
      ...cert90,
      ari: { windowStart: T0 + 60 * DAY, windowEnd: T0 + 62 * DAY },
      ariSelectedTime: T0 + 61 * DAY,
      random: noJitter,
    });
    assert.equal(plan.dueAt, T0 + 61 * DAY);
  });
});
