/**
 * `certkeeper/fastify`: a Fastify 5 plugin answering ACME HTTP-01 requests in
 * an `onRequest` hook; every other request continues through Fastify's
 * lifecycle untouched.
 *
 *   app.register(certkeeperChallenges, { keeper })                     // keeper outlives the app
 *   app.register(certkeeperChallenges, { keeper, closeKeeper: true })  // app.close() closes the keeper too
 *
 * The plugin is not encapsulated (like fastify-plugin), so the hook sees every
 * route of the instance it is registered on. It stops answering once the
 * instance closes; the keeper is closed with it only with `closeKeeper: true`,
 * because one keeper usually serves other servers too (the HTTPS one).
 *
 * Fastify is imported for types only.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyPluginCallback } from 'fastify';
import { InvalidOptionError } from '../errors.js';
import { mayBeChallengeRequest, resolveResponder, type ChallengeResponderSource } from './challenge.js';

export interface FastifyChallengeOptions {
  /** A CertKeeper (or an HTTP challenge responder). */
  keeper: ChallengeResponderSource;
  /** Close the keeper when the Fastify instance closes (default false). Needs a keeper with `close()`. */
  closeKeeper?: boolean;
}

function plugin(instance: FastifyInstance, options: FastifyChallengeOptions, done: (error?: Error) => void): void {
  // A callback plugin reports failures through done(): a throw here would escape Fastify's loader.
  try {
    register(instance, options);
  } catch (error) {
    done(error as Error);
    return;
  }
  done();
}

function register(instance: FastifyInstance, options: FastifyChallengeOptions): void {
  const keeper = options?.keeper;
  const responder = resolveResponder(keeper, 'keeper');
  const closeKeeper = options.closeKeeper ?? false;
  if (typeof closeKeeper !== 'boolean') throw new InvalidOptionError('closeKeeper', 'must be a boolean');
  const close = (keeper as { close?: unknown }).close;
  if (closeKeeper && typeof close !== 'function') throw new InvalidOptionError('closeKeeper', 'needs a keeper with a close() method');
  let closed = false;

  instance.addHook('onRequest', (request, reply, next) => {
    const raw = request.raw as IncomingMessage;
    if (closed || !mayBeChallengeRequest(raw.method, raw.url)) {
      next();
      return;
    }
    responder.respond(raw, reply.raw as ServerResponse).then(
      (answered) => {
        // Hijacking ends Fastify's lifecycle for this request: the response is already written.
        if (answered) reply.hijack();
        next();
      },
      (error: unknown) => next(error as Error),
    );
  });

  instance.addHook('onClose', async () => {
    closed = true;
    if (closeKeeper) await (close as () => Promise<void>).call(keeper);
  });
}

/** Register with `fastify.register(certkeeperChallenges, { keeper })`. */
export const certkeeperChallenges = Object.assign(plugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'certkeeper',
}) as FastifyPluginCallback<FastifyChallengeOptions>;

export default certkeeperChallenges;
