/**
 * HTTP-01 through a web server that is already running (certbot's
 * --webroot): the key authorization is written to
 * `<webroot>/.well-known/acme-challenge/<token>`, which the server serves
 * as a static file, and removed after validation, with the folders this
 * solver created. The token comes from the CA: anything but base64url is
 * refused, so it can never name a path outside the folder.
 *
 * (A solver: it belongs with the others in src/challenges/ once that folder exists.)
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ChallengeFailedError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ChallengeContext, Solver } from '../solvers/types.js';

export const ACME_CHALLENGE_PATH = ['.well-known', 'acme-challenge'] as const;
const TOKEN = /^[A-Za-z0-9_-]+$/;

export interface WebrootSolverOptions {
  /** The webroot serving a name (its document root for `http://<name>/`); undefined when none is configured. */
  webrootFor(name: string): string | undefined;
  logger: Logger;
}

export class WebrootSolver implements Solver {
  readonly #webrootFor: (name: string) => string | undefined;
  readonly #log: Logger;
  /** Folders created by present(), removed again by cleanUp() when empty. */
  readonly #created = new Map<string, number>();

  constructor(options: WebrootSolverOptions) {
    this.#webrootFor = options.webrootFor;
    this.#log = options.logger.child({ component: 'webroot' });
  }

  async present(challenge: ChallengeContext): Promise<void> {
    const path = this.#tokenPath(challenge);
    const webroot = this.#webroot(challenge);
    let dir = webroot;
    for (const part of ACME_CHALLENGE_PATH) {
      dir = join(dir, part);
      if (!(await exists(dir))) {
        await mkdir(dir, { mode: 0o755 }).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'EEXIST') throw this.#failure(challenge, `cannot create ${dir}: ${error.code ?? error.message}`, error);
        });
        this.#created.set(dir, (this.#created.get(dir) ?? 0) + 1);
      }
    }
    // Written whole, then renamed: the CA may fetch it as soon as it exists.
    const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(temp, challenge.keyAuthorization, { mode: 0o644, flag: 'wx' });
      await rename(temp, path);
    } catch (error) {
      await rm(temp, { force: true });
      throw this.#failure(challenge, `cannot write ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, error);
    }
    this.#log.debug({ name: challenge.identifier.value, path }, 'challenge token written to the webroot');
  }

  async cleanUp(challenge: ChallengeContext): Promise<void> {
    let path: string;
    try {
      path = this.#tokenPath(challenge);
    } catch {
      return; // present() refused it: nothing was written
    }
    await rm(path, { force: true }).catch((error: unknown) => this.#log.warn({ err: error, path }, 'cannot remove a challenge token from the webroot'));
    // Innermost first; a folder still in use by another pending challenge is not empty and stays.
    const webroot = this.#webroot(challenge);
    const dirs = [join(webroot, ...ACME_CHALLENGE_PATH), join(webroot, ACME_CHALLENGE_PATH[0])];
    for (const dir of dirs) {
      const count = this.#created.get(dir);
      if (count === undefined) continue;
      if (count > 1) {
        this.#created.set(dir, count - 1);
        continue;
      }
      this.#created.delete(dir);
      await rmdir(dir).catch(() => undefined);
    }
  }

  #webroot(challenge: ChallengeContext): string {
    const webroot = this.#webrootFor(challenge.identifier.value);
    if (webroot === undefined) throw this.#failure(challenge, 'no webroot is configured for this name');
    return webroot;
  }

  #tokenPath(challenge: ChallengeContext): string {
    if (!TOKEN.test(challenge.token)) throw this.#failure(challenge, 'the CA sent a token that is not base64url');
    return join(this.#webroot(challenge), ...ACME_CHALLENGE_PATH, challenge.token);
  }

  #failure(challenge: ChallengeContext, message: string, cause?: unknown): ChallengeFailedError {
    const name = challenge.identifier.value;
    return new ChallengeFailedError(name, 'http-01', `webroot HTTP-01 for ${name}: ${message}`, cause === undefined ? undefined : { cause });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
