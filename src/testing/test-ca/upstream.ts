/** HTTPS requests from the test CA to Pebble's ACME and management ports, trusting Pebble's own CA only. */
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';

const UPSTREAM_TIMEOUT_MS = 30_000;

export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface UpstreamRequest {
  method: string;
  /** Path and query on Pebble's ACME port. */
  path: string;
  /** The Host the client used: Pebble builds its URLs from it and checks each JWS "url" against it. */
  host: string;
  body?: Buffer;
  contentType?: string | undefined;
  accept?: string | undefined;
}

export class Upstream {
  readonly #acme: URL;
  readonly #managementUrl: string;
  readonly #ca: string;
  readonly #agent: https.Agent;

  constructor(pebble: { directoryUrl: string; managementUrl: string; caCertificate: string }) {
    this.#acme = new URL(pebble.directoryUrl);
    this.#managementUrl = pebble.managementUrl;
    this.#ca = pebble.caCertificate;
    this.#agent = new https.Agent({ keepAlive: true, ca: this.#ca });
  }

  /** Path of Pebble's directory, which the test CA serves at the same path. */
  get directoryPath(): string {
    return this.#acme.pathname;
  }

  acme(request: UpstreamRequest): Promise<UpstreamResponse> {
    const headers: Record<string, string> = { host: request.host };
    if (request.contentType) headers['content-type'] = request.contentType;
    if (request.accept) headers['accept'] = request.accept;
    return this.#send(
      { host: this.#acme.hostname, port: this.#acme.port, method: request.method, path: request.path, headers },
      request.body,
    );
  }

  /** A fresh nonce, for the answers the test CA gives itself: a real CA sends one with every response, errors included. */
  async nonce(host: string, newNoncePath: string): Promise<string | undefined> {
    const response = await this.acme({ method: 'HEAD', path: newNoncePath, host });
    const nonce = response.headers['replay-nonce'];
    return typeof nonce === 'string' ? nonce : undefined;
  }

  /** GET on the management port (roots, intermediates, their keys). */
  async management(path: string): Promise<string> {
    const url = new URL(`${this.#managementUrl}${path}`);
    const response = await this.#send({ host: url.hostname, port: url.port, method: 'GET', path: url.pathname, headers: {} });
    if (response.status !== 200) throw new Error(`Pebble management GET ${path} answered HTTP ${response.status}`);
    return response.body.toString('utf8');
  }

  close(): void {
    this.#agent.destroy();
  }

  #send(options: https.RequestOptions, body?: Buffer): Promise<UpstreamResponse> {
    return new Promise((resolve, reject) => {
      const req = https.request({ ...options, agent: this.#agent, timeout: UPSTREAM_TIMEOUT_MS }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`Pebble did not answer ${options.method} ${options.path} in time`)));
      req.on('error', reject);
      req.end(body);
    });
  }
}
