/**
 * On-demand TLS decisions: whether a name seen in a ClientHello may get a
 * certificate. Only names explicitly allowed by the user's decide() function
 * or ask endpoint ever reach a CA (caddy#5008: random-SNI floods).
 *
 * A flood must not turn into a flood of outbound ask requests either: at most
 * `maxConcurrent` decisions run at once (one more is refused at once, nothing
 * queues), a decision is aborted when every handshake waiting for it has gone
 * away, and answers (allow and deny) are reused for `cacheTtlMs`.
 */
import http from 'node:http';
import https from 'node:https';
import { systemClock, type Clock } from '../clock.js';
import { OnDemandBusyError } from '../errors.js';
import { Closable } from '../lifecycle.js';

export type Decision = { allowed: true } | { allowed: false; reason: string };

export type DecideFunction = (name: string, options: { signal: AbortSignal }) => boolean | Promise<boolean>;

export interface OnDemandPolicy {
  /** Gets a signal that aborts when the handshakes waiting for the answer are gone. */
  decide?: DecideFunction | undefined;
  askUrl?: string | undefined;
  askTimeoutMs: number;
  /** Extra trusted CAs for an https ask endpoint. */
  ca?: readonly string[] | undefined;
  /** Decisions in progress at once; beyond it decide() throws OnDemandBusyError at once. */
  maxConcurrent: number;
  /** How long an answer (allow or deny) is reused; 0 disables the cache. */
  cacheTtlMs: number;
  /** Most answers remembered (oldest dropped first). */
  cacheCapacity: number;
  clock?: Clock | undefined;
}

export interface OnDemandStats {
  /** Decisions made (decide() calls and ask requests started), cache hits excluded. */
  decisions: number;
  cacheHits: number;
  /** Decisions refused because maxConcurrent were in progress. */
  refusedBusy: number;
  inProgress: number;
}

interface Answer {
  decision: Decision;
  /** A real answer (decide() returned, the endpoint answered), as opposed to a failure to get one: only those are cached. */
  final: boolean;
}

const deny = (reason: string, final: boolean): Answer => ({ decision: { allowed: false, reason }, final });

export class OnDemandDecider extends Closable {
  readonly #policy: OnDemandPolicy;
  readonly #clock: Clock;
  /** name -> answer and its expiry; insertion order = age, for bounded FIFO trimming. */
  readonly #answers = new Map<string, { decision: Decision; until: number }>();
  readonly #stats = { decisions: 0, cacheHits: 0, refusedBusy: 0 };
  #inProgress = 0;

  constructor(policy: OnDemandPolicy) {
    super('OnDemandDecider');
    this.#policy = policy;
    this.#clock = policy.clock ?? systemClock;
  }

  get stats(): OnDemandStats {
    return { ...this.#stats, inProgress: this.#inProgress };
  }

  /**
   * Decides on a normalised name. Throws OnDemandBusyError (nothing asked, nothing queued) when
   * maxConcurrent decisions are in progress; a decision whose `signal` aborts ends as a deny.
   */
  async decide(name: string, signal: AbortSignal): Promise<Decision> {
    const cached = this.#cached(name);
    if (cached !== undefined) {
      this.#stats.cacheHits++;
      return cached;
    }
    if (this.#inProgress >= this.#policy.maxConcurrent) {
      this.#stats.refusedBusy++;
      throw new OnDemandBusyError(name, this.#policy.maxConcurrent);
    }
    if (signal.aborted) return deny('the handshake went away before a decision', false).decision;
    this.#inProgress++;
    this.#stats.decisions++;
    try {
      const answer = await this.#decideNow(name, signal);
      if (answer.final) this.#remember(name, answer.decision);
      return answer.decision;
    } finally {
      this.#inProgress--;
    }
  }

  /** Forgets every cached answer. */
  protected onClose(): void {
    this.#answers.clear();
  }

  async #decideNow(name: string, signal: AbortSignal): Promise<Answer> {
    const { decide, askUrl } = this.#policy;
    if (decide) {
      try {
        // The slot is held until decide() settles, even after an abort: that is what bounds the work in flight.
        const allowed = await decide(name, { signal });
        if (allowed !== true) return deny('decide() denied the name', true);
      } catch (error) {
        return deny(`decide() threw: ${(error as Error).message}`, false);
      }
    }
    if (askUrl) return ask(askUrl, name, this.#policy.askTimeoutMs, this.#policy.ca, signal);
    return decide ? { decision: { allowed: true }, final: true } : deny('no decision configured', true);
  }

  #cached(name: string): Decision | undefined {
    const hit = this.#answers.get(name);
    if (hit === undefined) return undefined;
    if (hit.until > this.#clock.now()) return hit.decision;
    this.#answers.delete(name);
    return undefined;
  }

  #remember(name: string, decision: Decision): void {
    if (this.#policy.cacheTtlMs === 0) return;
    this.#answers.delete(name);
    while (this.#answers.size >= this.#policy.cacheCapacity) {
      const oldest = this.#answers.keys().next();
      if (oldest.done) break;
      this.#answers.delete(oldest.value);
    }
    this.#answers.set(name, { decision, until: this.#clock.now() + this.#policy.cacheTtlMs });
  }
}

/**
 * GET askUrl?domain=<name>; only a 2xx allows. Redirects are not followed (a 3xx denies); a hang fails closed
 * after `timeoutMs`; an abort of `signal` destroys the request at once.
 */
function ask(askUrl: string, name: string, timeoutMs: number, ca: readonly string[] | undefined, signal: AbortSignal): Promise<Answer> {
  const url = new URL(askUrl);
  url.searchParams.set('domain', name);
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (answer: Answer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      // The status is all we need: do not keep the connection open for the body.
      request.destroy();
      resolve(answer);
    };
    const request = client.get(url, { agent: false, ...(ca && ca.length > 0 ? { ca: [...ca] } : {}) }, (response) => {
      const status = response.statusCode ?? 0;
      response.resume();
      finish(status >= 200 && status < 300 ? { decision: { allowed: true }, final: true } : deny(`ask endpoint answered HTTP ${status}`, true));
    });
    const onAbort = (): void => finish(deny('the handshake went away before the ask endpoint answered', false));
    const timer = setTimeout(() => finish(deny(`ask endpoint did not answer within ${timeoutMs} ms`, false)), timeoutMs);
    timer.unref();
    request.on('error', (error) => finish(deny(`ask endpoint failed: ${error.message}`, false)));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}
