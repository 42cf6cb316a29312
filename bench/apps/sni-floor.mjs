// Node's own floor for serving many certificates: one SecureContext per name, picked in SNICallback from a Map.
// No certkeeper: what any Node server serving N certificates pays, against which the keeper is compared.
//   node sni-floor.mjs <chainsJsonFile: { names: string[], chains: string[] }> <keyFile> <httpsPort>
import { readFileSync } from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';

const [chainsFile, keyFile, httpsPort] = process.argv.slice(2);
const { names, chains } = JSON.parse(readFileSync(chainsFile, 'utf8'));
const key = readFileSync(keyFile);
const contexts = new Map(names.map((name, i) => [name, tls.createSecureContext({ key, cert: chains[i] })]));
const server = https.createServer({ minVersion: 'TLSv1.3', SNICallback: (name, cb) => cb(null, contexts.get(name)) }, (_req, res) => res.end('ok'));
server.on('tlsClientError', () => {});
server.listen(Number(httpsPort), '127.0.0.1', () => console.log(JSON.stringify({ sinceStartMs: performance.now(), contexts: contexts.size })));
process.once('SIGTERM', () => server.close(() => process.exit(0)));
