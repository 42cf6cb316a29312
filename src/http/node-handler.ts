/**
 * A node:http request listener around an HTTP-01 responder: challenge
 * requests are answered, everything else goes to `next` or, without one, is
 * redirected to HTTPS (308).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { mayBeChallengeRequest, redirectToHttps, type ChallengeResponder } from './challenge.js';

export type NodeRequestListener = (req: IncomingMessage, res: ServerResponse) => void;

export function nodeChallengeHandler(responder: ChallengeResponder, next: NodeRequestListener | undefined, onError: (error: unknown) => void): NodeRequestListener {
  const pass: NodeRequestListener = (req, res) => (next ? next(req, res) : redirectToHttps(req, res));
  return (req, res) => {
    // Ordinary requests skip the asynchronous responder: no promise, no lookup.
    if (!mayBeChallengeRequest(req.method, req.url)) return pass(req, res);
    responder.respond(req, res).then(
      (handled) => {
        if (!handled) pass(req, res);
      },
      (error: unknown) => {
        onError(error);
        if (!res.headersSent) res.writeHead(500).end();
      },
    );
  };
}
