// An application over certificates already in FileStorage (fabricated under the internal issuer's
// key, see bench/lib/fabricate.ts), run with plain `node` against the installed tarball.
//   node stored.mjs <storageDir> <httpsPort> <count>
// Names are n0.bench.test ... n<count-1>.bench.test. Prints one JSON line when manageSync resolved.
import https from 'node:https';
import { CertKeeper, FileStorage } from 'certkeeper';

const [root, httpsPort, count] = process.argv.slice(2);
const names = Array.from({ length: Number(count) }, (_, i) => `n${i}.bench.test`);
const keeper = new CertKeeper({
  storage: new FileStorage({ root }),
  issuers: [{ type: 'internal' }],
  challenges: { http01: false },
  logLevel: 'warn',
});
const server = https.createServer(keeper.tlsOptions({ minVersion: 'TLSv1.3' }), (_req, res) => res.end('ok'));
server.on('tlsClientError', () => {});
server.listen(Number(httpsPort), '127.0.0.1');
const t0 = performance.now();
await keeper.manageSync(names);
console.log(JSON.stringify({ manageMs: performance.now() - t0, sinceStartMs: performance.now(), rss: process.memoryUsage().rss }));
const stop = () => {
  server.close();
  void keeper.close().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
