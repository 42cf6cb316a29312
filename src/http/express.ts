/**
 * `certkeeper/express`: Express 4 and 5 middleware answering ACME HTTP-01
 * requests; every other request continues to the next middleware untouched.
 * Mount it first, at the application root (`app.use(challengeMiddleware(keeper))`),
 * so the request path is the one the CA asked for.
 *
 * Express is not imported: the middleware is a plain `(req, res, next)`
 * function over Node's request and response, which both versions extend.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { mayBeChallengeRequest, resolveResponder, type ChallengeResponderSource } from './challenge.js';

export type ExpressNext = (error?: unknown) => void;
export type ExpressChallengeMiddleware = (req: IncomingMessage, res: ServerResponse, next: ExpressNext) => void;

export function challengeMiddleware(keeper: ChallengeResponderSource): ExpressChallengeMiddleware {
  const responder = resolveResponder(keeper);
  return function certkeeperChallenge(req, res, next) {
    if (!mayBeChallengeRequest(req.method, req.url)) {
      next();
      return;
    }
    responder.respond(req, res).then(
      (answered) => {
        if (!answered) next();
      },
      (error: unknown) => next(error),
    );
  };
}
