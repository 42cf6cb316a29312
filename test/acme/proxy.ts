/**
 * An HTTPS proxy in front of Pebble that can answer a request itself, to test
 * what Pebble 2.4 cannot do (429/503 with Retry-After, renewalInfo,
 * alreadyReplaced). It forwards the client's Host header, so Pebble names
 * the proxy in its URLs and accepts JWS "url" values that name the proxy.
 */
import { webcrypto } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as x509 from '@peculiar/x509';
import type { PebbleHandle } from '../helpers/pebble.js';

export interface SeenRequest {
  method: string;
  path: string;
  /** Decoded JWS protected header and payload, for POSTs. */
  protectedHeader?: Record<string, unknown>;
  payload?: unknown;
  /** Date.now() when the request arrived. */
  at: number;
}

export interface Injection {
  /** Never answer: the request hangs until the client gives up or the proxy closes. */
  stall?: boolean;
  /** Send no Replay-Nonce (as a load balancer's own error page would not). */
  noNonce?: boolean;
  status: number;
  headers?: Record<string, string>;
  body: unknown;
}

export interface ProxyHandle {
  directoryUrl: string;
  caPem: string;
  seen: SeenRequest[];
  /** Return a response to answer the request itself, or undefined to forward it. */
  inject: (request: SeenRequest) => Injection | undefined;
  /** Extra fields merged into the directory. */
  directoryExtra: Record<string, unknown>;
  /** Requests seen so far that match. */
  count(match: (request: SeenRequest) => boolean): number;
  close(): Promise<void>;
}

async function selfSignedFor127(): Promise<{ certPem: string; keyPem: string }> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '42',
    name: 'CN=certkeeper test proxy',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }]),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem'), keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}

function decodeJws(body: string): Pick<SeenRequest, 'protectedHeader' | 'payload'> {
  try {
    const jws = JSON.parse(body) as { protected: string; payload: string };
    const out: Pick<SeenRequest, 'protectedHeader' | 'payload'> = {
      protectedHeader: JSON.parse(Buffer.from(jws.protected, 'base64url').toString()) as Record<string, unknown>,
    };
    if (jws.payload) out.payload = JSON.parse(Buffer.from(jws.payload, 'base64url').toString());
    return out;
  } catch {
    return {};
  }
}

export async function startProxy(pebble: PebbleHandle): Promise<ProxyHandle> {
  const { certPem, keyPem } = await selfSignedFor127();
  const upstream = new URL(pebble.directoryUrl);
  let origin = '';
  const handle: ProxyHandle = {
    directoryUrl: '',
    caPem: certPem,
    seen: [],
    inject: () => undefined,
    directoryExtra: {},
    count: (match) => handle.seen.filter(match).length,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const rewrite = (text: string): string => text.replaceAll(upstream.origin, origin);
  const server = https.createServer({ cert: certPem, key: keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      const seen: SeenRequest = { method: req.method ?? 'GET', path: req.url ?? '/', at: Date.now(), ...(req.method === 'POST' ? decodeJws(body) : {}) };
      handle.seen.push(seen);
      const injected = handle.inject(seen);
      if (injected?.stall) return; // closeAllConnections() in close() ends it
      if (injected) {
        const answer = (nonce: unknown): void => {
          res.writeHead(injected.status, {
            'content-type': 'application/problem+json',
            ...(typeof nonce === 'string' ? { 'replay-nonce': nonce } : {}),
            ...injected.headers,
          });
          res.end(JSON.stringify(injected.body));
        };
        if (injected.noNonce) return answer(undefined);
        // A real CA sends a fresh nonce with every response, errors included.
        upstreamRequest('HEAD', '/nonce-plz', '', {}, (_status, headers) => answer(headers['replay-nonce']));
        return;
      }
      upstreamRequest(seen.method, seen.path, body, req.headers, (status, headers, responseBody) => {
        let text = rewrite(responseBody);
        if (seen.path === upstream.pathname && status === 200) {
          text = JSON.stringify({ ...(JSON.parse(text) as object), ...handle.directoryExtra });
        }
        const out: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(headers)) {
          if (value === undefined || name === 'content-length' || name === 'transfer-encoding' || name === 'connection') continue;
          out[name] = Array.isArray(value) ? value.map(rewrite) : rewrite(value);
        }
        res.writeHead(status, out);
        res.end(text);
      });
    });
  });
  function upstreamRequest(
    method: string,
    path: string,
    body: string,
    headers: Record<string, unknown>,
    done: (status: number, headers: Record<string, string | string[] | undefined>, body: string) => void,
  ): void {
    const req = https.request(
      { host: upstream.hostname, port: upstream.port, method, path, ca: pebble.pebbleCaPem, agent: false, headers: {
          'content-type': String(headers['content-type'] ?? 'application/jose+json'),
          // Pebble builds its URLs, and checks the JWS "url", from the Host header: keep the proxy's.
          ...(typeof headers.host === 'string' ? { host: headers.host } : {}),
        } },
      (resp) => {
        let text = '';
        resp.setEncoding('utf8');
        resp.on('data', (c: string) => { text += c; });
        resp.on('end', () => done(resp.statusCode ?? 502, resp.headers, text));
      },
    );
    req.on('error', () => done(502, {}, '{"type":"about:blank","detail":"proxy upstream error"}'));
    req.end(body);
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  handle.directoryUrl = `${origin}${upstream.pathname}`;
  return handle;
}
