import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_ON_DEMAND_DECISION_CACHE_TTL_MS, DEFAULT_ON_DEMAND_MAX_CONCURRENT_DECISIONS, resolveConfig } from '../../src/config/index.js';
import { InvalidOptionError } from '../../src/errors.js';

const decide = (): boolean => true;

describe('onDemand decision options', () => {
  test('defaults, explicit values and false', () => {
    const defaults = resolveConfig({ onDemand: { decide } }).onDemand;
    assert.ok(defaults);
    assert.equal(defaults.maxConcurrentDecisions, DEFAULT_ON_DEMAND_MAX_CONCURRENT_DECISIONS);
    assert.equal(defaults.decisionCacheTtlMs, DEFAULT_ON_DEMAND_DECISION_CACHE_TTL_MS);
    const set = resolveConfig({ onDemand: { decide, maxConcurrentDecisions: 3, decisionCacheTtlMs: 0 } }).onDemand;
    assert.ok(set);
    assert.equal(set.maxConcurrentDecisions, 3);
    assert.equal(set.decisionCacheTtlMs, 0);
    const off = resolveConfig({ onDemand: { decide, decisionCacheTtlMs: false } }).onDemand;
    assert.equal(off && off.decisionCacheTtlMs, 0, 'false disables the cache');
  });

  test('invalid values are InvalidOptionErrors naming the option', () => {
    for (const [key, value] of [['maxConcurrentDecisions', 0], ['maxConcurrentDecisions', 1.5], ['maxConcurrentDecisions', '8'], ['decisionCacheTtlMs', -1], ['decisionCacheTtlMs', true]] as const) {
      assert.throws(() => resolveConfig({ onDemand: { decide, [key]: value } as never }), (e: unknown) => e instanceof InvalidOptionError && e.option === `onDemand.${key}`, `${key}: ${String(value)}`);
    }
  });
});
