/** How fast orders go: per-issuer rate limits and how renewals yield to traffic. */
import { InvalidOptionError } from '../errors.js';
import { durationMs, positiveInteger } from '../validate.js';
import {
  DEFAULT_CLOCK_JUMP_CHECK_INTERVAL_MS,
  DEFAULT_CLOCK_JUMP_THRESHOLD_MS,
  DEFAULT_RENEWALS_PER_SECOND_WHEN_BUSY,
  DEFAULT_RENEWAL_CHECK_INTERVAL_MS,
  DEFAULT_RENEWAL_IDLE_BURST,
  DEFAULT_RENEWAL_MAX_EVENT_LOOP_UTILIZATION,
  DEFAULT_RENEWAL_MIN_IDLE_CPUS,
} from '../defaults.js';
import type { ClockJumpOptions, RateLimitOptions, RenewalPacingOptions, ResolvedConfig } from './options.js';

export function resolveRateLimit(value: RateLimitOptions, option: string): Readonly<RateLimitOptions> {
  if (typeof value !== 'object' || value === null) throw new InvalidOptionError(option, 'must be an object or false');
  return Object.freeze({
    capacity: positiveInteger(value.capacity, `${option}.capacity`) ?? fail(`${option}.capacity`, 'is required'),
    refillAmount: positiveInteger(value.refillAmount, `${option}.refillAmount`) ?? fail(`${option}.refillAmount`, 'is required'),
    refillIntervalMs: durationMs(value.refillIntervalMs, `${option}.refillIntervalMs`) ?? fail(`${option}.refillIntervalMs`, 'is required'),
  });
}

function fail(option: string, message: string): never {
  throw new InvalidOptionError(option, message);
}

export function resolveRenewalPacing(value: RenewalPacingOptions | false | undefined): ResolvedConfig['renewalPacing'] {
  if (value === false) return false;
  if (value !== undefined && (typeof value !== 'object' || value === null)) throw new InvalidOptionError('renewalPacing', 'must be an object or false');
  const maxEventLoopUtilization = value?.maxEventLoopUtilization ?? DEFAULT_RENEWAL_MAX_EVENT_LOOP_UTILIZATION;
  if (typeof maxEventLoopUtilization !== 'number' || !(maxEventLoopUtilization > 0 && maxEventLoopUtilization <= 1)) {
    throw new InvalidOptionError('renewalPacing.maxEventLoopUtilization', 'must be a number greater than 0 and at most 1');
  }
  const minIdleCpus = value?.minIdleCpus ?? DEFAULT_RENEWAL_MIN_IDLE_CPUS;
  if (typeof minIdleCpus !== 'number' || !Number.isFinite(minIdleCpus) || minIdleCpus < 0) {
    throw new InvalidOptionError('renewalPacing.minIdleCpus', 'must be a number >= 0');
  }
  const renewalsPerSecondWhenBusy = value?.renewalsPerSecondWhenBusy ?? DEFAULT_RENEWALS_PER_SECOND_WHEN_BUSY;
  if (typeof renewalsPerSecondWhenBusy !== 'number' || !Number.isFinite(renewalsPerSecondWhenBusy) || renewalsPerSecondWhenBusy <= 0) {
    throw new InvalidOptionError('renewalPacing.renewalsPerSecondWhenBusy', 'must be a positive number');
  }
  return Object.freeze({
    maxEventLoopUtilization,
    minIdleCpus,
    renewalsPerSecondWhenBusy,
    checkIntervalMs: DEFAULT_RENEWAL_CHECK_INTERVAL_MS,
    idleBurst: DEFAULT_RENEWAL_IDLE_BURST,
  });
}

export function resolveClockJump(value: ClockJumpOptions | false | undefined): ResolvedConfig['clockJump'] {
  if (value === false) return false;
  if (value !== undefined && (typeof value !== 'object' || value === null)) throw new InvalidOptionError('clockJump', 'must be an object or false');
  return Object.freeze({
    thresholdMs: durationMs(value?.thresholdMs, 'clockJump.thresholdMs') ?? DEFAULT_CLOCK_JUMP_THRESHOLD_MS,
    checkIntervalMs: durationMs(value?.checkIntervalMs, 'clockJump.checkIntervalMs') ?? DEFAULT_CLOCK_JUMP_CHECK_INTERVAL_MS,
  });
}
