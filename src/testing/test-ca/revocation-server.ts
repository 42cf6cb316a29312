/**
 * The plain-HTTP listener for revocation data, as public CAs serve it (a
 * client checking revocation must not need TLS to the CA first): the CRL at
 * /crl and, when enabled, OCSP at /ocsp (POST, or GET with the base64
 * request in the path, RFC 6960 appendix A).
 */
import http from 'node:http';
import type { Clock } from '../../clock.js';
import type { Lifecycle } from '../../lifecycle.js';
import { readBody } from './answer.js';
import type { Ledger } from './ledger.js';
import type { OcspResponder } from './ocsp.js';
import type { CrlPublisher } from './revocation.js';

export const CRL_PATH = '/crl';
export const OCSP_PATH = '/ocsp';
/** Far larger than any OCSP request for a handful of certificates. */
const MAX_OCSP_REQUEST_BYTES = 64 * 1024;

export interface RevocationServerParts {
  ledger: Ledger;
  crl: CrlPublisher;
  ocsp: OcspResponder | undefined;
  clock: Clock;
  lifecycle: Lifecycle;
}

export function createRevocationServer(parts: RevocationServerParts): http.Server {
  return http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://revocation.invalid').pathname;
    const endpoint = path === CRL_PATH ? 'crl' : path === OCSP_PATH || path.startsWith(`${OCSP_PATH}/`) ? 'ocsp' : 'other';
    parts.ledger.count(endpoint);
    const fault = endpoint === 'other' ? undefined : parts.ledger.takeFault(endpoint);
    if (fault) {
      res.writeHead(fault.status, fault.retryAfter !== undefined ? { 'retry-after': fault.retryAfter } : {}).end();
      return;
    }
    const reply = (answer: Promise<{ type: string; body: Buffer } | undefined>): void => {
      parts.lifecycle.track(answer).then(
        (ok) => (ok ? res.writeHead(200, { 'content-type': ok.type }).end(ok.body) : res.writeHead(404).end()),
        () => res.writeHead(500).end(),
      );
    };
    if (endpoint === 'crl' && req.method === 'GET') {
      reply(parts.crl.crl(parts.clock.now()).then((body) => ({ type: 'application/pkix-crl', body: parts.ledger.crlTampered ? tampered(body) : body })));
    } else if (endpoint === 'ocsp' && parts.ocsp) {
      const ocsp = parts.ocsp;
      reply(ocspRequest(req, path).then(async (request) => (request ? { type: 'application/ocsp-response', body: await ocsp.respond(request) } : undefined)));
    } else {
      res.writeHead(404).end();
    }
  });
}

/** The same CRL with the last byte of its signature flipped: well-formed, but signed by nobody. */
function tampered(der: Buffer): Buffer {
  const copy = Buffer.from(der);
  copy[copy.length - 1] = (copy[copy.length - 1] as number) ^ 0x01;
  return copy;
}

async function ocspRequest(req: http.IncomingMessage, path: string): Promise<Buffer | undefined> {
  if (req.method === 'GET' && path.startsWith(`${OCSP_PATH}/`)) {
    return Buffer.from(decodeURIComponent(path.slice(OCSP_PATH.length + 1)), 'base64');
  }
  if (req.method !== 'POST') return undefined;
  const body = await readBody(req);
  return body.length <= MAX_OCSP_REQUEST_BYTES ? body : undefined;
}
