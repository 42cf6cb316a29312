/** Shared bits of the ACME engine tests. */
import { X509Certificate } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { AcmeIssuer, type AcmeIssuerOptions } from '../../src/issuers/acme.js';
import type { Logger } from '../../src/logger.js';
import { parseIdentifier, type Identifier } from '../../src/names.js';
import type { ChallengeContext, Solver } from '../../src/challenges/types.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import type { PebbleHandle } from '../helpers/pebble.js';

/** For Pebble with PEBBLE_VA_ALWAYS_VALID=1: records calls, answers nothing. */
export class RecordingSolver implements Solver {
  readonly presented: ChallengeContext[] = [];
  readonly cleaned: ChallengeContext[] = [];
  async present(challenge: ChallengeContext): Promise<void> {
    this.presented.push(challenge);
  }
  async cleanUp(challenge: ChallengeContext): Promise<void> {
    this.cleaned.push(challenge);
  }
}

export function ids(...names: string[]): Identifier[] {
  return names.map((n) => parseIdentifier(n));
}

export function pebbleIssuer(pebble: PebbleHandle, overrides: Partial<AcmeIssuerOptions> = {}): AcmeIssuer {
  return new AcmeIssuer({
    directoryUrl: pebble.directoryUrl,
    caCertificates: pebble.pebbleCaPem,
    agreeToTerms: true,
    email: 'admin@example.test',
    storage: new MemoryStorage(),
    solvers: { 'http-01': new RecordingSolver() },
    pollIntervalMs: 50,
    ...overrides,
  });
}

/** Leaf SANs as `DNS:x` / `IP Address:y` entries. */
export function leafSans(chainPem: string): string[] {
  const leaf = new X509Certificate(chainPem);
  return (leaf.subjectAltName ?? '').split(', ').filter(Boolean).sort();
}

/** A pino logger at debug level writing into a string buffer. */
export function captureLogger(): { logger: Logger; text: () => string } {
  let buffer = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      buffer += chunk.toString('utf8');
      done();
    },
  });
  const logger = pino({ level: 'trace' }, sink) as unknown as Logger;
  return { logger, text: () => buffer };
}

/** Resolves when the signal fires (at once if it already has). */
export function untilAborted(signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!signal || signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
