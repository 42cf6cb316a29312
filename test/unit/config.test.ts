import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_KEY_TYPE,
  DEFAULT_RENEWAL_MAX_EVENT_LOOP_UTILIZATION,
  DEFAULT_RENEWAL_MIN_IDLE_CPUS,
  DEFAULT_RENEWAL_WINDOW_RATIO,
  DEFAULT_RENEWALS_PER_SECOND_WHEN_BUSY,
  resolveConfig,
  type CertKeeperOptions,
} from '../../src/config/index.js';
import { InvalidOptionError } from '../../src/errors.js';
import { silentLogger } from '../helpers/logging.js';

describe('resolveConfig', () => {
  it('fills defaults and freezes the result', () => {
    const config = resolveConfig({ logger: silentLogger() });
    assert.equal(config.keyType, DEFAULT_KEY_TYPE);
    assert.equal(config.renewalWindowRatio, DEFAULT_RENEWAL_WINDOW_RATIO);
    assert.deepEqual(
      config.renewalPacing && [config.renewalPacing.maxEventLoopUtilization, config.renewalPacing.minIdleCpus, config.renewalPacing.renewalsPerSecondWhenBusy],
      [DEFAULT_RENEWAL_MAX_EVENT_LOOP_UTILIZATION, DEFAULT_RENEWAL_MIN_IDLE_CPUS, DEFAULT_RENEWALS_PER_SECOND_WHEN_BUSY],
    );
    assert.equal(config.agreeToTerms, false);
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.challenges));
    assert.deepEqual(config.challenges.preference, ['http-01', 'tls-alpn-01', 'dns-01']);
  });

  it('never mutates the caller object', () => {
    const options: CertKeeperOptions = { challenges: { http01: { port: 8080 } }, logger: silentLogger() };
    const snapshot = JSON.stringify({ ...options, logger: undefined });
    resolveConfig(options);
    assert.equal(JSON.stringify({ ...options, logger: undefined }), snapshot);
  });

  it('lets an explicit false win over a default', () => {
    const config = resolveConfig({ challenges: { http01: false, tlsAlpn01: { listener: false } }, rateLimit: false, onDemand: false, renewalPacing: false, logger: silentLogger() });
    assert.equal(config.renewalPacing, false);
    assert.equal(config.challenges.http01, false);
    assert.ok(config.challenges.tlsAlpn01 !== false && config.challenges.tlsAlpn01.listener === false);
    assert.equal(config.rateLimit, false);
    assert.equal(config.onDemand, false);
  });

  it('names the offending option in a typed error', () => {
    const cases: Array<[unknown, string]> = [
      [{ keyType: 'dsa' }, 'keyType'],
      [{ renewalWindowRatio: 1.5 }, 'renewalWindowRatio'],
      [{ maxConcurrentOrders: 0 }, 'maxConcurrentOrders'],
      [{ renewalPacing: 'slow' }, 'renewalPacing'],
      [{ renewalPacing: { maxEventLoopUtilization: 0 } }, 'renewalPacing.maxEventLoopUtilization'],
      [{ renewalPacing: { minIdleCpus: -1 } }, 'renewalPacing.minIdleCpus'],
      [{ renewalPacing: { renewalsPerSecondWhenBusy: 0 } }, 'renewalPacing.renewalsPerSecondWhenBusy'],
      [{ challenges: { http01: { port: 70000 } } }, 'challenges.http01.port'],
      [{ onDemand: {} }, 'onDemand'],
      [{ onDemand: { askUrl: 'ftp://x' } }, 'onDemand.askUrl'],
      [{ email: 'not-an-email' }, 'email'],
      [{ directoryUrl: 'https://x' }, 'directoryUrl'],
      [{ bogus: 1 }, 'bogus'],
      [{ logger: { info() {} } }, 'logger'],
      [{ caCertificates: 'not pem' }, 'caCertificates'],
      [{ challenges: { http01: false, tlsAlpn01: false } }, 'challenges'],
    ];
    for (const [options, option] of cases) {
      assert.throws(
        () => resolveConfig(options as CertKeeperOptions),
        (e: unknown) => e instanceof InvalidOptionError && e.code === 'ERR_INVALID_OPTION' && e.option === option,
        option,
      );
    }
  });

  it('never puts the EAB HMAC key in an error message', () => {
    const secret = 'this is not base64url!';
    assert.throws(
      () => resolveConfig({ externalAccountBinding: { kid: 'k', hmacKey: secret }, logger: silentLogger() }),
      (e: unknown) => e instanceof InvalidOptionError && !e.message.includes(secret),
    );
  });
});
