/**
 * A keeper's metrics in the application's own prom-client registry, on
 * http://127.0.0.1:9464/metrics, beside an HTTPS server on
 * https://localhost:8443 (internal CA, so it runs offline).
 *
 *   npm install prom-client
 *   npx tsx examples/metrics/index.ts
 *   curl -s http://127.0.0.1:9464/metrics                                             # Prometheus text
 *   curl -s -H 'Accept: application/openmetrics-text' http://127.0.0.1:9464/metrics   # OpenMetrics
 *
 * The metrics listener is plain HTTP on loopback: put it where only your
 * Prometheus can reach it (it names every certificate you manage).
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry, type OpenMetricsContentType, type PrometheusContentType } from 'prom-client';
import { CertKeeper, FileStorage } from 'certkeeper';
import { registerCertKeeperMetrics } from 'certkeeper/prometheus';

const keeper = new CertKeeper({
  storage: new FileStorage({ root: process.env.STORAGE_DIR ?? '.certkeeper-metrics-example' }),
  issuers: [{ type: 'internal' }],
  challenges: { http01: { listener: false }, tlsAlpn01: false },
  defaultServerName: 'localhost',
  logLevel: 'warn',
});
await keeper.manageSync(['localhost']);

// The application's registries: its own metrics (here the process defaults) and certkeeper's in one scrape.
// One registry per format, because prom-client renames counters in place when it writes OpenMetrics.
const text = new Registry<PrometheusContentType>();
const openMetrics = new Registry<OpenMetricsContentType>();
openMetrics.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
for (const registry of [text, openMetrics]) {
  collectDefaultMetrics({ register: registry });
  registerCertKeeperMetrics(keeper, { registry });
}

const site = https.createServer(keeper.tlsOptions(), (_req, res) => res.end('hello\n'));
site.listen(Number(process.env.HTTPS_PORT ?? 8443), '127.0.0.1');

const metrics = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/metrics') {
    const registry = (req.headers.accept ?? '').includes('application/openmetrics-text') ? openMetrics : text;
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      () => res.writeHead(500).end(),
    );
    return;
  }
  res.writeHead(404).end();
});
metrics.listen(Number(process.env.METRICS_PORT ?? 9464), '127.0.0.1', () => {
  console.log(`metrics on http://127.0.0.1:${(metrics.address() as AddressInfo).port}/metrics`);
});

const stop = (): void => {
  site.close();
  metrics.close();
  void keeper.close();
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
