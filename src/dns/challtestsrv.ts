/**
 * A DnsProvider for pebble-challtestsrv's management API, the mock DNS server
 * that Pebble's validator asks in tests. It proves the DNS-01 path end to end
 * without a real DNS server.
 *
 * challtestsrv keeps several TXT values per name (each /set-txt adds one), but
 * /clear-txt drops all of them and there is no way to remove just one. Clearing
 * and writing back the others would leave the name empty for a moment, failing
 * a validation of the other value (the wildcard and the apex of one name are
 * validated at the same time). So a removed value stays published until the
 * last value this provider holds at that name is removed; then the name is
 * cleared. An extra stale value never fails a validation. Values added at the
 * same name by anyone else are cleared too: use one provider per challtestsrv.
 */
import { AbortedError, DnsProviderError, InvalidOptionError } from '../errors.js';
import type { DnsProvider, DnsRecord } from './types.js';
import { durationMs } from '../validate.js';
import { DEFAULT_CHALLTESTSRV_TIMEOUT_MS } from '../defaults.js';
export { DEFAULT_CHALLTESTSRV_TIMEOUT_MS };

export interface ChalltestsrvDnsProviderOptions {
  /** Base URL of the management API, e.g. `http://127.0.0.1:8055`. */
  managementUrl: string;
  /** Per-request timeout (default 5 s). */
  timeoutMs?: number | undefined;
}


export class ChalltestsrvDnsProvider implements DnsProvider {
  readonly name = 'challtestsrv';
  readonly #base: URL;
  readonly #timeoutMs: number;
  /** Values this provider has written, by fully qualified host. */
  readonly #values = new Map<string, string[]>();
  /** Changes to one host run one at a time: clear + re-add must not interleave with an add. */
  #queue: Promise<void> = Promise.resolve();

  constructor(options: ChalltestsrvDnsProviderOptions) {
    let base: URL;
    try {
      base = new URL(options.managementUrl);
    } catch {
      throw new InvalidOptionError('managementUrl', 'must be an http(s) URL');
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new InvalidOptionError('managementUrl', 'must be an http(s) URL');
    const timeoutMs = durationMs(options.timeoutMs, 'timeoutMs') ?? DEFAULT_CHALLTESTSRV_TIMEOUT_MS;
    this.#base = base;
    this.#timeoutMs = timeoutMs;
  }

  addTxtRecord(record: DnsRecord, signal?: AbortSignal): Promise<void> {
    return this.#serial(async () => {
      const host = fqdn(record.name);
      await this.#post('/set-txt', { host, value: record.value }, signal);
      this.#values.set(host, [...(this.#values.get(host) ?? []), record.value]);
    });
  }

  removeTxtRecord(record: DnsRecord, signal?: AbortSignal): Promise<void> {
    return this.#serial(async () => {
      const host = fqdn(record.name);
      const held = this.#values.get(host) ?? [];
      const index = held.indexOf(record.value);
      if (index === -1) return;
      const remaining = held.filter((_, i) => i !== index);
      if (remaining.length > 0) {
        this.#values.set(host, remaining);
        return;
      }
      await this.#post('/clear-txt', { host }, signal);
      this.#values.delete(host);
    });
  }

  #serial(task: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(task);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #post(path: string, body: Record<string, string>, signal: AbortSignal | undefined): Promise<void> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let response: Response;
    try {
      response = await fetch(new URL(path, this.#base), { method: 'POST', body: JSON.stringify(body), signal: combined });
      await response.arrayBuffer();
    } catch (error) {
      if (signal?.aborted) throw new AbortedError('challtestsrv request aborted', { cause: signal.reason });
      throw new DnsProviderError(this.name, `${path} failed: ${(error as Error).message}`, timeout.aborted ? 'timeout' : 'network', { cause: error });
    }
    if (!response.ok) throw new DnsProviderError(this.name, `${path} answered HTTP ${response.status}`, `HTTP ${response.status}`);
  }
}

function fqdn(name: string): string {
  return name.endsWith('.') ? name : `${name}.`;
}
