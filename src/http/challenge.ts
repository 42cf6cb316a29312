/**
 * Framework-neutral pieces shared by the HTTP adapters: where the challenge
 * responder comes from, a cheap synchronous pre-check that keeps ordinary
 * requests off the asynchronous path, and the HTTPS redirect.
 *
 * Adapters receive a responder (or something that has one, such as a
 * CertKeeper), never the manager itself, so no framework reaches the core.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { InvalidOptionError } from '../errors.js';
import { HTTP_CHALLENGE_PATH_PREFIX, identifierFromHost, type HttpChallengeResponder } from '../challenges/http01-responder.js';
import { DEFAULT_HTTPS_PORT } from '../defaults.js';
export { DEFAULT_HTTPS_PORT };

export { HTTP_CHALLENGE_PATH_PREFIX };

/** The adapters' name for the one responder type (challenges/http01-responder.ts). */
export type ChallengeResponder = HttpChallengeResponder;

/** A CertKeeper (anything with `useExternalHttpChallengeResponder()`) or a responder itself. */
export type ChallengeResponderSource = ChallengeResponder | { useExternalHttpChallengeResponder(): ChallengeResponder };

/**
 * The responder of a keeper or the responder given. Asking the keeper for it
 * tells it that a server of the user's answers challenges, so it stops
 * opening its own HTTP-01 listener: done once, when the adapter is built.
 */
export function resolveResponder(source: ChallengeResponderSource, option = 'keeper'): ChallengeResponder {
  if (typeof source !== 'object' || source === null) throw new InvalidOptionError(option, 'must be a CertKeeper or an HTTP challenge responder');
  const keeper = source as { useExternalHttpChallengeResponder?: unknown };
  const responder = typeof keeper.useExternalHttpChallengeResponder === 'function'
    ? (keeper.useExternalHttpChallengeResponder as () => ChallengeResponder).call(source)
    : (source as ChallengeResponder);
  if (typeof responder !== 'object' || responder === null || typeof responder.respond !== 'function') {
    throw new InvalidOptionError(option, 'must be a CertKeeper or an HTTP challenge responder');
  }
  return responder;
}

/**
 * True when the request could be a challenge request (GET or HEAD under the
 * challenge path). Everything else goes straight to the application, with no
 * promise or storage lookup in between.
 */
export function mayBeChallengeRequest(method: string | undefined, url: string | undefined): boolean {
  return (method === 'GET' || method === 'HEAD') && url !== undefined && url.startsWith(HTTP_CHALLENGE_PATH_PREFIX);
}

/**
 * Redirects to the same host and path over HTTPS with 308 (method and body
 * kept). The host is rebuilt from its normalised form, not copied, and an
 * unusable Host or a request target that is not a path gets 400.
 */
export function redirectToHttps(req: IncomingMessage, res: ServerResponse, httpsPort = DEFAULT_HTTPS_PORT): void {
  const identifier = identifierFromHost(req.headers.host);
  const path = req.url ?? '/';
  if (identifier === undefined || !path.startsWith('/')) {
    res.writeHead(400, { 'content-type': 'text/plain', 'content-length': 12, connection: 'close' }).end('Bad Request\n');
    return;
  }
  const host = identifier.includes(':') ? `[${identifier}]` : identifier;
  const port = httpsPort === DEFAULT_HTTPS_PORT ? '' : `:${httpsPort}`;
  res.writeHead(308, { location: `https://${host}${port}${path}`, 'content-length': 0, connection: 'close' }).end();
}
