import type { Server } from 'node:net';
import { ChallengeListenerError, InvalidOptionError } from '../errors.js';

/** Checks a standalone challenge listener's port option (0 = any free port, for tests). */
export function validateListenerPort(port: number, option: string): number {
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new InvalidOptionError(option, 'must be an integer port number');
  return port;
}

/** Binds `server`; a bind failure (port taken, no permission) becomes a ChallengeListenerError naming the address. */
export async function listenForChallenges(server: Server, port: number, host: string | undefined): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    throw new ChallengeListenerError(`${host ?? '*'}:${port}`, (error as Error).message, { cause: error });
  }
}
