/** The answer the front sends, and the small helpers for building it. */
import type { IncomingMessage } from 'node:http';
import type { UpstreamResponse } from './upstream.js';

export interface Answer {
  status: number;
  headers: Record<string, string | string[]>;
  body: string | Buffer;
}

/** Builds a problem document with a fresh nonce (a real CA sends one with every answer, errors included). */
export type ProblemAnswer = (status: number, type: string, detail: string, headers?: Record<string, string>) => Promise<Answer>;

/** Response headers a relay must not copy (Node sets its own framing). */
const HOP_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);

export function relayed(upstream: UpstreamResponse): Answer {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(upstream.headers)) {
    if (value !== undefined && !HOP_HEADERS.has(name)) headers[name] = value;
  }
  return { status: upstream.status, headers, body: upstream.body };
}

export function parseJson(body: string | Buffer): unknown {
  try {
    return JSON.parse(body.toString());
  } catch {
    return undefined;
  }
}

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
