// The baseline server of the handshake benchmark: Node's https with one static certificate.
//   node static.mjs <certFile> <keyFile> <httpsPort>
import { readFileSync } from 'node:fs';
import https from 'node:https';

const [certFile, keyFile, httpsPort] = process.argv.slice(2);
const server = https.createServer({ minVersion: 'TLSv1.3', cert: readFileSync(certFile), key: readFileSync(keyFile) }, (_req, res) => res.end('ok'));
server.on('tlsClientError', () => {});
server.listen(Number(httpsPort), '127.0.0.1', () => console.log(JSON.stringify({ sinceStartMs: performance.now() })));
process.once('SIGTERM', () => server.close(() => process.exit(0)));
