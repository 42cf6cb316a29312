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
import { mkdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ChallengeFailedError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ChallengeContext, Solver } from '../challenges/types.js';

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
  /** Per webroot: challenges presented and not cleaned up yet, and the folders present() created there. */
  readonly #inUse = new Map<string, { pending: number; created: string[] }>();

  constructor(options: WebrootSolverOptions) {
    this.#webrootFor = options.webrootFor;
    this.#log = options.logger.child({ component: 'webroot' });
  }

  async present(challenge: ChallengeContext): Promise<void> {
    const path = this.#tokenPath(challenge);
    const webroot = this.#webroot(challenge);
    let use = this.#inUse.get(webroot);
    if (!use) {
      use = { pending: 0, created: [] };
      this.#inUse.set(webroot, use);
    }
    use.pending++;
    let dir = webroot;
    for (const part of ACME_CHALLENGE_PATH) {
      dir = join(dir, part);
      try {
        await mkdir(dir, { mode: 0o755 });
        use.created.push(dir);
      } catch (error) {
        const { code, message } = error as NodeJS.ErrnoException;
        if (code === 'EEXIST') continue;
        // The webroot is the web server's: it is never created here, only the folders inside it.
        if (code === 'ENOENT' && dir === join(webroot, ACME_CHALLENGE_PATH[0])) throw this.#failure(challenge, `the webroot ${webroot} does not exist`, error);
        throw this.#failure(challenge, `cannot create ${dir}: ${code ?? message}`, error);
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
    let webroot: string;
    try {
      path = this.#tokenPath(challenge);
      webroot = this.#webroot(challenge);
    } catch {
      return; // present() refused it: nothing was written
    }
    await rm(path, { force: true }).catch((error: unknown) => this.#log.warn({ err: error, path }, 'cannot remove a challenge token from the webroot'));
    const use = this.#inUse.get(webroot);
    if (!use || --use.pending > 0) return;
    // The last challenge of this webroot: remove the folders made for them, innermost first.
    this.#inUse.delete(webroot);
    for (const dir of use.created.reverse()) await rmdir(dir).catch(() => undefined);
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
