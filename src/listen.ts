/**
 * Binding a server with its bind error as a rejection: listen() reports a
 * taken port or a refused address through 'error', not a callback. Callers
 * wrap the original error in their own typed one.
 */
import type { Server } from 'node:net';

export interface ListenOptions {
  port: number;
  host?: string | undefined;
  /** Bind an IPv6 address only (no dual-stack `::`), as for `::1`. */
  ipv6Only?: boolean | undefined;
  /** Stops waiting: rejects with the signal's reason (the caller closes the server). */
  signal?: AbortSignal | undefined;
}

/** Resolves once `server` listens; rejects with the error it emitted while binding. */
export function listen(server: Pick<Server, 'listen' | 'once' | 'off'>, options: ListenOptions): Promise<void> {
  const { signal } = options;
  return new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => {
      signal?.removeEventListener('abort', onAbort);
      reject(error);
    };
    const onAbort = (): void => {
      server.off('error', onError);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    server.once('error', onError);
    server.listen({ port: options.port, host: options.host, ...(options.ipv6Only ? { ipv6Only: true } : {}) }, () => {
      server.off('error', onError);
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}
