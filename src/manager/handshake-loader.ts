/**
 * The loader handed to the TLS context cache: called for a server name that
 * is not cached. A managed name gets its stored set (or a background obtain);
 * an unknown name goes through the on-demand policy (rate limit, decision,
 * then one order). No I/O before a name is known to be ours.
 */
import { DEFAULT_ON_DEMAND_DECISION_CACHE_CAPACITY } from '../config/index.js';
import { OnDemandBusyError } from '../errors.js';
import { Closable } from '../lifecycle.js';
import { createRateLimiter, type RateLimiter } from '../limits/token-bucket.js';
import type { ManagedRecord } from '../renewal/managed-record.js';
import type { CertificateMaterial } from '../tls/certificate-material.js';
import { OnDemandDecider, type Decision } from './on-demand.js';
import { renewSoon, type KeeperParts } from './parts.js';

export class HandshakeLoader extends Closable {
  readonly #parts: KeeperParts;
  readonly #onDemandLimiter: RateLimiter | undefined;
  readonly #onDemandDecider: OnDemandDecider | undefined;
  /** On-demand orders admitted (a token reserved) that have not started yet. */
  #waitingToStart = 0;

  constructor(parts: KeeperParts) {
    super('HandshakeLoader');
    this.#parts = parts;
    const { onDemand, clock } = parts.config;
    this.#onDemandLimiter = onDemand ? createRateLimiter(onDemand.rateLimit, clock, 'onDemand.rateLimit') : undefined;
    this.#onDemandDecider = onDemand
      ? new OnDemandDecider({
          decide: onDemand.decide,
          askUrl: onDemand.askUrl,
          askTimeoutMs: onDemand.askTimeoutMs,
          maxConcurrent: onDemand.maxConcurrentDecisions,
          cacheTtlMs: onDemand.decisionCacheTtlMs,
          cacheCapacity: DEFAULT_ON_DEMAND_DECISION_CACHE_CAPACITY,
          clock,
        })
      : undefined;
  }

  /** `signal`: the load's timeout; `abandoned`: every handshake waiting for it went away. */
  async load(name: string, signal: AbortSignal, abandoned: AbortSignal): Promise<CertificateMaterial | undefined> {
    const record = this.#parts.registry.serving(name);
    if (record) return this.#loadManaged(record, name, signal);
    if (this.#onDemandDecider === undefined) return undefined;
    return this.#loadOnDemand(this.#onDemandDecider, name, signal, abandoned);
  }

  protected async onClose(): Promise<void> {
    await Promise.all([this.#onDemandLimiter?.close(), this.#onDemandDecider?.close()]);
  }

  async #loadManaged(record: ManagedRecord, name: string, signal: AbortSignal): Promise<CertificateMaterial | undefined> {
    const { stored, pipeline, cache, config, foreground } = this.#parts;
    if (record.issuerKey !== undefined) {
      // A handshake waits on this read: background reads (the warm-up) hold back until it is done.
      const done = foreground.enter();
      const set = await stored.readSet(record.issuerKey, record.certName).finally(done);
      if (set && stored.usable(set.meta, record)) return stored.adopt(record, set);
      // Expired (a sleep outran its renewal): served while it is renewed, better than no certificate (the
      // cache then reports it, and served-invalid.ts renews it or finds a newer one).
      if (set && record.names.every((n) => set.meta.names.includes(n)) && !pipeline.has(record.certName)) return stored.adopt(record, set);
    }
    if (pipeline.has(record.certName)) {
      await pipeline.join(record.certName, signal);
      return record.materialId !== undefined ? cache.peek(name) : undefined;
    }
    // Stored set vanished or broke: obtain again in the background, unless a failure backoff still runs
    // (handshakes must not turn a broken storage or CA into a retry storm).
    // A final refusal waits for an operator's forced renew, whatever the handshakes.
    const backoff = record.backoff;
    if (!record.finalError && (backoff === undefined || backoff.nextAttemptAt <= config.clock.now())) renewSoon(this.#parts, record);
    return undefined;
  }

  async #loadOnDemand(decider: OnDemandDecider, name: string, signal: AbortSignal, abandoned: AbortSignal): Promise<CertificateMaterial | undefined> {
    const { events, log, registry, stored, failures, scheduler, pipeline, cache, config } = this.#parts;
    // The one look at the bucket, before any decision or I/O: a free token is claimed for this name's order
    // (it leaves the bucket when the order starts), or the handshake is refused at once. At most
    // maxConcurrentOrders admitted orders wait to start, so an admitted handshake waits for its own order,
    // not behind a queue, and what waits stays bounded.
    if (this.#waitingToStart >= config.maxConcurrentOrders) {
      events.emit('on_demand_denied', { name, reason: 'too many on-demand orders waiting to start', rateLimited: true });
      return undefined;
    }
    const reservation = this.#onDemandLimiter?.reserve();
    if (reservation === undefined) {
      events.emit('on_demand_denied', { name, reason: 'on-demand rate limit reached', rateLimited: true });
      return undefined;
    }
    this.#waitingToStart++;
    let waiting = true;
    const settle = (): void => {
      if (waiting) this.#waitingToStart--;
      waiting = false;
    };
    const onOrderStart = (): void => {
      reservation.consume();
      settle();
    };
    try {
      let decision: Decision;
      try {
        // Aborted when the handshakes waiting for it are gone; the order that may follow is not.
        decision = await decider.decide(name, abandoned);
      } catch (error) {
        if (error instanceof OnDemandBusyError) events.emit('on_demand_denied', { name, reason: 'too many on-demand decisions in progress' });
        throw error;
      }
      if (!decision.allowed) {
        events.emit('on_demand_denied', { name, reason: decision.reason });
        log.debug({ name, reason: decision.reason }, 'on-demand certificate denied');
        return undefined;
      }
      const [fresh] = registry.register([name], undefined);
      if (!fresh) return undefined;
      fresh.onDemand = true;
      if (!pipeline.has(fresh.certName) && fresh.materialId === undefined) {
        // Stored by an earlier run? Then no order is needed.
        if (await stored.load(fresh, { eager: true })) {
          scheduler.scheduleNext(fresh);
          return cache.peek(name);
        }
        // Failed before (this process, an earlier run, a peer) and still backing off, or refused finally: no order.
        const blocked = await failures.restore(fresh, undefined);
        if (blocked) {
          scheduler.scheduleNext(fresh);
          log.debug({ name, err: blocked }, 'on-demand name is backing off');
          return undefined;
        }
      }
      try {
        // Joining a run already in flight spends nothing: only a run this call starts calls onOrderStart.
        await pipeline.run(fresh, { renewal: false, force: false, signal, onOrderStart });
      } catch (error) {
        log.warn({ err: error, name }, 'on-demand certificate could not be obtained');
        return undefined;
      }
      return cache.peek(name);
    } finally {
      // No order started (denied, stored already, backing off, failed before the issuer): the token is free again.
      reservation.release();
      settle();
    }
  }
}
