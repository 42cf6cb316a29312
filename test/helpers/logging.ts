import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../src/logger.js';

/** Silent unless CERTKEEPER_TEST_LOG names a level (then logs to stderr, for debugging a test). */
export function silentLogger(): Logger {
  const level = process.env.CERTKEEPER_TEST_LOG;
  return level ? pino({ level }, pino.destination(2)) : pino({ level: 'silent' });
}

/** A debug-level pino logger writing into memory, for asserting what is (not) logged. */
export function captureLogger(level: 'trace' | 'debug' | 'info' = 'debug'): { logger: Logger; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { logger: pino({ level }, stream), text: () => chunks.join('') };
}
