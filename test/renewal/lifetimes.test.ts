/**
 * The lifetime rule for every lifetime a CA hands out in 2026 (Let's Encrypt's
 * shortlived 160 h, tlsserver 45 d, the CA/B Forum's 47 d ceiling of 2029,
 * classic 90 d, 100 d and 200 d of other CAs): due with 1/3 of the lifetime
 * left (1/2 for 10 days or less), emergency at 1/20, jitter of at most 5 % of
 * the renewal window (and at most a day) that only moves renewal earlier.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  emergencyTime,
  isEmergency,
  MAX_RENEWAL_JITTER_MS,
  planRenewal,
  renewalDueTime,
  SHORT_LIVED_LIFETIME_MS,
} from '../../src/renewal/renewal-policy.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOT_BEFORE = Date.UTC(2026, 0, 1);

interface Row {
  label: string;
  lifetime: number;
  /** Time left at the due time without jitter. */
  leftWhenDue: number;
  /** Time left when renewal becomes an emergency. */
  leftAtEmergency: number;
  /** Largest jitter (earliest due time = due - this). */
  maxJitter: number;
}

// Expected values written out by hand, not computed with the ratios under test.
const TABLE: Row[] = [
  { label: '160 hours (shortlived)', lifetime: 160 * HOUR, leftWhenDue: 80 * HOUR, leftAtEmergency: 8 * HOUR, maxJitter: 4 * HOUR },
  { label: '10 days (last short-lived)', lifetime: 10 * DAY, leftWhenDue: 5 * DAY, leftAtEmergency: 12 * HOUR, maxJitter: 6 * HOUR },
  { label: '45 days (tlsserver)', lifetime: 45 * DAY, leftWhenDue: 15 * DAY, leftAtEmergency: 54 * HOUR, maxJitter: 18 * HOUR },
  { label: '47 days (CA/B Forum 2029)', lifetime: 47 * DAY, leftWhenDue: 376 * HOUR, leftAtEmergency: 56.4 * HOUR, maxJitter: 18.8 * HOUR },
  { label: '90 days (classic)', lifetime: 90 * DAY, leftWhenDue: 30 * DAY, leftAtEmergency: 108 * HOUR, maxJitter: DAY },
  { label: '100 days', lifetime: 100 * DAY, leftWhenDue: 800 * HOUR, leftAtEmergency: 5 * DAY, maxJitter: DAY },
  { label: '200 days', lifetime: 200 * DAY, leftWhenDue: 1600 * HOUR, leftAtEmergency: 10 * DAY, maxJitter: DAY },
];

const close = (actual: number, expected: number, what: string): void => {
  // renewalDueTime floors to whole milliseconds; 1/3 of a lifetime is not always whole.
  assert.ok(Math.abs(actual - expected) <= 1, `${what}: ${actual} is not ${expected}`);
};

describe('renewal times for every lifetime', () => {
  for (const row of TABLE) {
    test(row.label, () => {
      const cert = { notBefore: NOT_BEFORE, notAfter: NOT_BEFORE + row.lifetime };
      const due = renewalDueTime({ ...cert, random: () => 0 });
      close(cert.notAfter - due, row.leftWhenDue, 'time left at the due time');

      const earliest = renewalDueTime({ ...cert, random: () => 1 - Number.EPSILON });
      close(due - earliest, row.maxJitter, 'largest jitter');
      assert.ok(row.maxJitter <= MAX_RENEWAL_JITTER_MS);
      for (const r of [0.25, 0.5, 0.75]) {
        const jittered = renewalDueTime({ ...cert, random: () => r });
        assert.ok(jittered <= due && jittered >= earliest, `jitter ${r} stays inside [${earliest}, ${due}]`);
      }
      // Renewal is due well before the emergency point, and the jitter never pulls it before issuance.
      assert.ok(due < emergencyTime(cert) && earliest > cert.notBefore);

      close(cert.notAfter - emergencyTime(cert), row.leftAtEmergency, 'time left at the emergency point');
      assert.equal(isEmergency(cert, emergencyTime(cert) - 1), false);
      assert.equal(isEmergency(cert, emergencyTime(cert)), true);

      // Without ARI the plan is the lifetime rule.
      const plan = planRenewal({ ...cert, random: () => 0 });
      assert.deepEqual({ dueAt: plan.dueAt, source: plan.source, emergencyAt: plan.emergencyAt }, { dueAt: due, source: 'lifetime', emergencyAt: emergencyTime(cert) });
    });
  }

  test('the short-lived rule ends at exactly 10 days: one second more renews with 1/3 left', () => {
    assert.equal(SHORT_LIVED_LIFETIME_MS, 10 * DAY);
    const longer = { notBefore: NOT_BEFORE, notAfter: NOT_BEFORE + 10 * DAY + 1000 };
    close(longer.notAfter - renewalDueTime({ ...longer, random: () => 0 }), (10 * DAY + 1000) / 3, 'time left');
  });
});
