/**
 * Prometheus metrics of a keeper on http://127.0.0.1:9464/metrics, beside an
 * HTTPS server on https://localhost:8443 (internal CA, so it runs offline).
 *
 *   npx tsx examples/metrics/index.ts
 *   curl -s http://127.0.0.1:9464/metrics
 *
 * The metrics listener is plain HTTP on loopback: put it where only your
 * Prometheus can reach it (it names every certificate you manage).
 */
import http from 'node:http';
import https from 'node:https';
import { CertKeeper, FileStorage, PROMETHEUS_CONTENT_TYPE } from 'certkeeper';

const keeper = new CertKeeper({
  storage: new FileStorage({ root: process.env.STORAGE_DIR ?? '.certkeeper-metrics-example' }),
  issuers: [{ type: 'internal' }],
  challenges: { http01: { listener: false }, tlsAlpn01: false },
  defaultServerName: 'localhost',
  logLevel: 'warn',
});
await keeper.manageSync(['localhost']);

const site = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('hello\n'));
site.listen(8443, '127.0.0.1');

const metrics = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/metrics') {
    res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE });
    res.end(keeper.metrics());
    return;
  }
  res.writeHead(404).end();
});
metrics.listen(9464, '127.0.0.1', () => console.log('metrics on http://127.0.0.1:9464/metrics'));

const stop = (): void => {
  site.close();
  metrics.close();
  void keeper.close();
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
