/** A local webhook receiver that checks each delivery's signature the way a real one would. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyNotificationSignature } from '../../src/notify/deliver.js';

export interface Delivery {
  headers: http.IncomingHttpHeaders;
  body: string;
  json: Record<string, unknown>;
  signatureValid: boolean;
}

export interface Receiver {
  url: string;
  deliveries: Delivery[];
  /** Every request, answered or not. */
  requests: number;
  /** Status to answer with (default 204); `hang` never answers. */
  respond: (delivery: Delivery) => number | 'hang';
  /** The receiver's clock for the replay window (the keeper's fake clock in some tests). */
  now: () => number;
  close(): Promise<void>;
}

export async function startReceiver(secret: string): Promise<Receiver> {
  const receiver: Receiver = {
    url: '',
    deliveries: [],
    requests: 0,
    respond: () => 204,
    now: Date.now,
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    receiver.requests++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const header = (name: string): string | undefined => {
        const value = req.headers[name];
        return Array.isArray(value) ? value[0] : value;
      };
      const delivery: Delivery = {
        headers: req.headers,
        body,
        json: JSON.parse(body) as Record<string, unknown>,
        signatureValid: verifyNotificationSignature({ secret, body, signature: header(SIGNATURE_HEADER), timestamp: header(TIMESTAMP_HEADER), now: receiver.now() }),
      };
      const status = receiver.respond(delivery);
      if (status === 'hang') return;
      if (status >= 200 && status < 300) receiver.deliveries.push(delivery);
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/certkeeper`;
  receiver.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}
