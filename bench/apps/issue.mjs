// An application as a user writes it, run by bench/built.ts with plain `node` inside a project that
// installed the packed certkeeper tarball: an HTTPS server on keeper.tlsOptions(), then manageSync.
//   node issue.mjs <directoryUrl> <caFile> <http01Port> <httpsPort> <storageDir> <name>...
// Prints one JSON line when manageSync has resolved (every certificate obtained and stored).
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { CertKeeper, FileStorage } from 'certkeeper';

const [ca, caFile, http01Port, httpsPort, root, ...names] = process.argv.slice(2);
const keeper = new CertKeeper({
  ca,
  caCertificates: readFileSync(caFile, 'utf8'),
  agreeToTerms: true,
  email: 'bench@example.test',
  storage: new FileStorage({ root }),
  challenges: { http01: { port: Number(http01Port), host: '127.0.0.1' }, tlsAlpn01: false },
  logLevel: 'warn',
});
const server = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('ok'));
server.on('tlsClientError', () => {});
server.listen(Number(httpsPort), '127.0.0.1');
const t0 = performance.now();
let failed = 0;
try {
  await keeper.manageSync(names);
} catch (error) {
  failed = error?.failures?.length ?? names.length;
}
// performance.now() counts from the process's time origin: this is "process start to stored".
console.log(JSON.stringify({ manageMs: performance.now() - t0, sinceStartMs: performance.now(), failed }));
const stop = () => {
  server.close();
  void keeper.close().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
