/**
 * `certkeeper/koa`: Koa 2 and 3 middleware answering ACME HTTP-01 requests;
 * every other request continues down the middleware stack untouched. Use it
 * first (`app.use(challengeMiddleware(keeper))`), outside any mount prefix.
 *
 * Koa is not imported: the context is typed by the few fields used.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { mayBeChallengeRequest, resolveResponder, type ChallengeResponderSource } from './challenge.js';

/** The part of a Koa context this middleware touches. */
export interface KoaChallengeContext {
  req: IncomingMessage;
  res: ServerResponse;
  respond?: boolean;
}

export type KoaNext = () => Promise<unknown>;
export type KoaChallengeMiddleware = (ctx: KoaChallengeContext, next: KoaNext) => Promise<unknown>;

export function challengeMiddleware(keeper: ChallengeResponderSource): KoaChallengeMiddleware {
  const responder = resolveResponder(keeper);
  return async function certkeeperChallenge(ctx, next) {
    if (!mayBeChallengeRequest(ctx.req.method, ctx.req.url)) return next();
    if (await responder.respond(ctx.req, ctx.res)) {
      // The response is written; Koa must not write its own.
      ctx.respond = false;
      return undefined;
    }
    return next();
  };
}
