import { execFile } from 'node:child_process';
import https from 'node:https';
import tls from 'node:tls';

export interface PeerInfo {
  serialNumber: string;
  subjectAltName: string | undefined;
  authorized: boolean;
  authorizationError: string | undefined;
}

/** One TLS handshake to 127.0.0.1:port with SNI `servername`, trusting `ca`. */
export function handshake(port: number, servername: string, ca: string | string[], extra: tls.ConnectionOptions = {}): Promise<PeerInfo> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false, ...extra }, () => {
      const peer = socket.getPeerCertificate();
      resolve({
        serialNumber: String(peer.serialNumber ?? '').toUpperCase(),
        subjectAltName: peer.subjectaltname,
        authorized: socket.authorized,
        authorizationError: socket.authorizationError ? String(socket.authorizationError) : undefined,
      });
      socket.end();
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('handshake timed out')));
    socket.on('error', reject);
  });
}

/** GET https://servername:port/path over 127.0.0.1 with verification against `ca`. */
export function httpsGet(port: number, servername: string, ca: string | string[], path = '/', agent?: https.Agent): Promise<{ status: number; body: string; serialNumber: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, servername, path, ca, headers: { host: servername }, ...(agent ? { agent } : { agent: false }) }, (res) => {
      const chunks: Buffer[] = [];
      // Read now: a keep-alive socket is detached from the response once it ends.
      const serialNumber = String((res.socket as tls.TLSSocket).getPeerCertificate().serialNumber ?? '').toUpperCase();
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), serialNumber });
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
  });
}

/** Runs `openssl s_client` against 127.0.0.1:port and returns its output. */
export function opensslSClient(port: number, servername: string, caFile: string, extraArgs: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', servername, '-CAfile', caFile, '-verify_return_error', '-showcerts', ...extraArgs],
      { timeout: 15_000 },
      (error, stdout, stderr) => {
        if (error && !stdout) reject(new Error(`openssl failed: ${stderr}`));
        else resolve(stdout + stderr);
      },
    );
    child.stdin?.end();
  });
}
