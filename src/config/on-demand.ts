/**
 * On-demand issuance: certificates obtained during a handshake for names not
 * managed yet, only for names a decide() function or an ask endpoint allows.
 */
import { InvalidOptionError } from '../errors.js';
import { durationMs, optionalString, positiveInteger } from '../validate.js';
import {
  DEFAULT_ASK_TIMEOUT_MS,
  DEFAULT_ON_DEMAND_DECISION_CACHE_TTL_MS,
  DEFAULT_ON_DEMAND_MAX_CONCURRENT_DECISIONS,
  DEFAULT_ON_DEMAND_RATE,
  DEFAULT_ON_DEMAND_TIMEOUT_MS,
} from '../defaults.js';
import { resolveRateLimit } from './limits.js';
import type { OnDemandOptions, ResolvedConfig } from './options.js';

export function resolveOnDemand(value: OnDemandOptions | false | undefined): ResolvedConfig['onDemand'] {
  if (value === undefined || value === false) return false;
  if (typeof value !== 'object' || value === null) throw new InvalidOptionError('onDemand', 'must be an object or false');
  if (value.decide !== undefined && typeof value.decide !== 'function') throw new InvalidOptionError('onDemand.decide', 'must be a function');
  let askUrl: string | undefined;
  if (value.askUrl !== undefined) {
    askUrl = optionalString(value.askUrl, 'onDemand.askUrl');
    let parsed: URL;
    try {
      parsed = new URL(askUrl ?? '');
    } catch {
      throw new InvalidOptionError('onDemand.askUrl', 'must be an absolute http(s) URL');
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new InvalidOptionError('onDemand.askUrl', 'must be an http(s) URL');
  }
  if (value.decide === undefined && askUrl === undefined) {
    // Without a decision anyone can make us order certificates for any name (caddy#5008).
    throw new InvalidOptionError('onDemand', 'needs a decide(name) function or an askUrl; refusing to issue for every name a client sends');
  }
  return Object.freeze({
    decide: value.decide,
    askUrl,
    rateLimit: value.rateLimit === undefined ? DEFAULT_ON_DEMAND_RATE : resolveRateLimit(value.rateLimit, 'onDemand.rateLimit'),
    timeoutMs: durationMs(value.timeoutMs, 'onDemand.timeoutMs') ?? DEFAULT_ON_DEMAND_TIMEOUT_MS,
    askTimeoutMs: durationMs(value.askTimeoutMs, 'onDemand.askTimeoutMs') ?? DEFAULT_ASK_TIMEOUT_MS,
    maxConcurrentDecisions: positiveInteger(value.maxConcurrentDecisions, 'onDemand.maxConcurrentDecisions') ?? DEFAULT_ON_DEMAND_MAX_CONCURRENT_DECISIONS,
    decisionCacheTtlMs: value.decisionCacheTtlMs === false ? 0 : (durationMs(value.decisionCacheTtlMs, 'onDemand.decisionCacheTtlMs', true) ?? DEFAULT_ON_DEMAND_DECISION_CACHE_TTL_MS),
  });
}
