/**
 * examples/metrics: the application's prom-client registry and certkeeper's
 * series in one scrape, in both formats; exits 0 on SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseOpenMetricsText } from './openmetrics-parser.js';
import { parsePrometheusText } from './prometheus-parser.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

function waitForUrl(child: ChildProcess, output: { text: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready in time:\n${output.text}`)), 60_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output.text += chunk.toString();
      const match = /metrics on (http:\/\/\S+)/.exec(output.text);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => (output.text += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before it was ready:\n${output.text}`));
    });
  });
}

test('examples/metrics serves its own and certkeeper\'s series from one registry, as Prometheus text and as OpenMetrics', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'certkeeper-metrics-example-'));
  const child = spawn(process.execPath, ['--import', 'tsx', join('examples', 'metrics', 'index.ts')], {
    cwd: repoRoot,
    env: { ...process.env, STORAGE_DIR: dir, METRICS_PORT: '0', HTTPS_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const output = { text: '' };
  try {
    const url = await waitForUrl(child, output);
    const textResponse = await fetch(url);
    assert.match(textResponse.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = parsePrometheusText(await textResponse.text());
    assert.ok(text.has('process_cpu_user_seconds_total'), 'the application\'s own metrics');
    assert.equal(text.get('certkeeper_certificate_expiry_seconds')?.samples[0]?.labels.name, 'localhost');
    const omResponse = await fetch(url, { headers: { accept: 'application/openmetrics-text' } });
    assert.match(omResponse.headers.get('content-type') ?? '', /^application\/openmetrics-text/);
    const om = parseOpenMetricsText(await omResponse.text());
    assert.deepEqual(om.get('certkeeper_obtains_total')?.samples.map((s) => [s.labels.result, s.value]), [['success', 1]]);
    child.kill('SIGTERM');
    assert.deepEqual(await exited, { code: 0, signal: null }, output.text);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  }
});
