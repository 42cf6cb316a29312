/** The challenge ports: an HTTP-01 test token fetched through each name's addresses, and the TLS-ALPN-01 port. */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { Logger } from '../logger.js';
import { parseIdentifier } from '../names.js';
import { Http01Solver, HTTP_CHALLENGE_PATH_PREFIX } from '../challenges/http01.js';
import type { ChallengeContext } from '../challenges/types.js';
import type { Storage } from '../storage/types.js';
import { DEFAULT_DOCTOR_TIMEOUT_MS } from '../defaults.js';
import { listen } from '../listen.js';
import type { DoctorResolver } from './resolvers.js';
import type { CheckResult } from './result.js';

export interface Http01CheckOptions {
  names: readonly string[];
  port: number;
  /** Address to bind ('' for all). */
  host: string;
  storage: Storage;
  /** Issuer key under which the test token is filed in storage (so a running keeper sharing the storage can answer). */
  issuerKey: string;
  resolver: DoctorResolver;
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  logger?: Logger | undefined;
}

/**
 * Serves a test token the way HTTP-01 does (our own listener, or a server
 * already on the port that answers from the shared storage) and fetches it
 * through each name's addresses with that Host, as the CA would.
 */
export async function checkHttp01(options: Http01CheckOptions): Promise<CheckResult[]> {
  const check = 'http-01';
  const where = `${options.host || '*'}:${options.port}`;
  const solver = new Http01Solver({ storage: options.storage, port: options.port, host: options.host, listener: true, logger: options.logger });
  const challenges: ChallengeContext[] = [];
  const results: CheckResult[] = [];
  let listening = true;
  let listenError: Error | undefined;
  try {
    for (const name of options.names) {
      const identifier = parseIdentifier(name);
      const token = randomBytes(24).toString('base64url');
      const challenge: ChallengeContext = {
        identifier,
        type: 'http-01',
        token,
        keyAuthorization: `${token}.certkeeper-doctor`,
        issuerKey: options.issuerKey,
        signal: options.signal,
      };
      challenges.push(challenge);
      try {
        await solver.present(challenge);
      } catch (error) {
        // The token is filed in storage before the listener starts: a server already on the port may still answer it.
        listening = false;
        listenError = error as Error;
      }
    }
    if (!listening && /EACCES/.test(String(listenError?.message))) {
      return [{ check, subject: where, status: 'fail', detail: `cannot bind ${where}: permission denied`, remedy: 'run with CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep $(which node)) or forward port 80 to --http-port' }];
    }
    for (const challenge of challenges) {
      results.push(await fetchChallenge(challenge, options, listening, where));
    }
  } finally {
    for (const challenge of challenges) await solver.cleanUp(challenge).catch(() => undefined);
    await solver.close();
  }
  return results;
}

async function fetchChallenge(challenge: ChallengeContext, options: Http01CheckOptions, listening: boolean, where: string): Promise<CheckResult> {
  const name = challenge.identifier.value;
  const base = { check: 'http-01', subject: name };
  const addresses = challenge.identifier.type === 'ip' ? [name] : await options.resolver.addresses(name, options.signal).catch(() => []);
  if (addresses.length === 0) {
    return { ...base, status: 'fail', detail: 'no A/AAAA address to reach', remedy: `add an A or AAAA record for ${name} pointing at this server` };
  }
  const failures: string[] = [];
  for (const address of addresses) {
    try {
      const body = await httpGetText(address, options.port, name, `${HTTP_CHALLENGE_PATH_PREFIX}${challenge.token}`, options.timeoutMs ?? DEFAULT_DOCTOR_TIMEOUT_MS, options.signal);
      if (body.status === 200 && body.text.trim() === challenge.keyAuthorization) continue;
      failures.push(`${address}: HTTP ${body.status}${body.status === 200 ? ' with another body' : ''}`);
    } catch (error) {
      failures.push(`${address}: ${(error as Error).message}`);
    }
  }
  const how = listening ? `certkeeper listened on ${where}` : `${where} was in use; the server there answered from storage`;
  if (failures.length === 0) return { ...base, status: 'pass', detail: `test token fetched through ${addresses.join(', ')} port ${options.port} (${how})` };
  const remedy = listening
    ? `make ${name} port 80 reach this host's port ${options.port} (DNS, firewall, port forwarding)`
    : `the program on ${where} must answer ACME challenges: mount keeper.httpChallengeHandler() with the same storage, or free the port`;
  return { ...base, status: 'fail', detail: `test token not served: ${failures.join('; ')}`, remedy };
}

/** Whether the TLS-ALPN-01 port can be bound (or is already held, presumably by your HTTPS server). */
export async function checkTlsAlpnPort(options: { port: number; host: string }): Promise<CheckResult> {
  const check = 'tls-alpn-01';
  const subject = `${options.host || '*'}:${options.port}`;
  const server = net.createServer();
  try {
    await listen(server, { port: options.port, host: options.host || undefined });
    return { check, subject, status: 'pass', detail: 'port can be bound for the TLS-ALPN-01 listener' };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      return { check, subject, status: 'warn', detail: 'port in use', remedy: 'fine if it is your HTTPS server using keeper.tlsOptions(); otherwise free it or disable TLS-ALPN-01' };
    }
    return { check, subject, status: 'fail', detail: `cannot bind: ${(error as Error).message}`, remedy: code === 'EACCES' ? 'grant CAP_NET_BIND_SERVICE or use a port above 1023 forwarded from 443' : 'check the address' };
  } finally {
    await new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
  }
}

function httpGetText(address: string, port: number, host: string, path: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: address, port, path, headers: { host: hostHeader(host, port) }, agent: false, ...(signal ? { signal } : {}) },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (text.length < 4096) text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

function hostHeader(host: string, port: number): string {
  const bare = net.isIPv6(host) ? `[${host}]` : host;
  return port === 80 ? bare : `${bare}:${port}`;
}
