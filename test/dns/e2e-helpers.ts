/** Shared bits of the DNS-01 end-to-end tests. */
import { X509Certificate } from 'node:crypto';
import type { DnsProvider, DnsRecord } from '../../src/dns/types.js';

/** Wraps a provider and records what it was asked to add and remove. */
export class RecordingProvider implements DnsProvider {
  readonly name: string;
  readonly added: DnsRecord[] = [];
  readonly removed: DnsRecord[] = [];
  readonly #inner: DnsProvider;

  constructor(inner: DnsProvider) {
    this.#inner = inner;
    this.name = inner.name;
  }

  async addTxtRecord(record: DnsRecord, signal?: AbortSignal): Promise<void> {
    await this.#inner.addTxtRecord(record, signal);
    this.added.push({ ...record });
  }

  async removeTxtRecord(record: DnsRecord, signal?: AbortSignal): Promise<void> {
    await this.#inner.removeTxtRecord(record, signal);
    this.removed.push({ ...record });
  }
}

/** The DNS names of a chain's leaf certificate, sorted. */
export function leafNames(chainPem: string): string[] {
  const leaf = new X509Certificate(chainPem);
  return (leaf.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4))
    .sort();
}

/** The first error of type `type` in an error's `cause` / `errors` / `failures` tree. */
export function findInChain<T extends Error>(error: unknown, type: abstract new (...args: never[]) => T): T | undefined {
  const seen = new Set<unknown>();
  const queue: unknown[] = [error];
  while (queue.length > 0) {
    const current = queue.shift();
    if (current === undefined || current === null || seen.has(current)) continue;
    seen.add(current);
    if (current instanceof type) return current;
    if (typeof current === 'object') {
      const e = current as { cause?: unknown; errors?: unknown; failures?: { error: unknown }[] };
      queue.push(e.cause);
      if (Array.isArray(e.errors)) queue.push(...e.errors);
      if (Array.isArray(e.failures)) queue.push(...e.failures.map((f) => f.error));
    }
  }
  return undefined;
}
