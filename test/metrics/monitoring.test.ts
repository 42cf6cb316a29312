/**
 * The shipped alert rules and Grafana dashboard (monitoring/): promtool checks
 * and unit-tests the rules (each alert fires on one input series and stays
 * silent on another), mutated rules make those unit tests fail (so they can),
 * and every metric a rule or a dashboard query names is one certkeeper exports.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { KeeperMetrics } from '../../src/observability/metrics.js';
import { promtool } from '../helpers/promtool.js';
import { skipUnlessInstalled } from '../helpers/system.js';

const monitoring = fileURLToPath(new URL('../../monitoring/', import.meta.url));
const ALERTS = join(monitoring, 'alerts.yml');
const ALERT_TESTS = join(monitoring, 'alerts.test.yml');
const DASHBOARD = join(monitoring, 'dashboard.json');
const skip = skipUnlessInstalled('promtool');

/** Every family name certkeeper exports (keeper.metrics(), certkeeper/prometheus). */
const EXPORTED = new Set(new KeeperMetrics().families({ certificates: [], cache: { hits: 0, misses: 0 }, now: 0 }).map((f) => f.name));

/** Replaces every rule's `expr` (one line, or a `|` block) with `replacement`. */
function mutateExprs(rules: string, replacement: string): string {
  const out: string[] = [];
  const lines = rules.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const match = /^(\s*)expr: (.*)$/.exec(line);
    if (!match) {
      out.push(line);
      continue;
    }
    const indent = (match[1] as string).length;
    out.push(`${match[1]}expr: ${replacement}`);
    if ((match[2] as string).trim() === '|') {
      while (i + 1 < lines.length && /^\s*/.exec(lines[i + 1] as string)![0].length > indent && (lines[i + 1] as string).trim() !== '') i++;
    }
  }
  return out.join('\n');
}

function alertNames(rules: string): string[] {
  return [...rules.matchAll(/^\s*- alert: (\S+)$/gm)].map((m) => m[1] as string);
}

/** Metric names in a PromQL expression: identifiers outside quotes, braces' values and grouping clauses, that are certkeeper's or Prometheus's `up`. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '');
  return [...bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)].map((m) => m[0]).filter((id) => id.startsWith('certkeeper_') || id === 'up');
}

interface DashboardQuery {
  where: string;
  expr: string;
}

function dashboardQueries(dashboard: { panels: { title: string; targets?: { expr: string }[] }[]; templating: { list: { name: string; query?: unknown }[] } }): DashboardQuery[] {
  const queries: DashboardQuery[] = [];
  for (const panel of dashboard.panels) {
    assert.ok((panel.targets ?? []).length > 0, `panel "${panel.title}" has a query`);
    for (const target of panel.targets ?? []) queries.push({ where: `panel "${panel.title}"`, expr: target.expr });
  }
  for (const variable of dashboard.templating.list) {
    const query = variable.query as { query?: string } | string | undefined;
    const text = typeof query === 'string' ? query : query?.query;
    const inner = text && /^label_values\((.*),\s*\w+\)$/.exec(text)?.[1];
    if (inner) queries.push({ where: `variable $${variable.name}`, expr: inner });
  }
  return queries;
}

/** Grafana's variables replaced by values Prometheus accepts, so promtool can parse the query. */
function asPromql(expr: string): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m').replace(/\$(\w+)/g, '.*');
}

describe('monitoring/alerts.yml with promtool', { skip }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'certkeeper-alerts-'));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('promtool check rules accepts the rules', async () => {
    const result = await promtool(['check', 'rules', ALERTS]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const count = alertNames(await readFile(ALERTS, 'utf8')).length;
    assert.match(result.stdout, new RegExp(`SUCCESS: ${count} rules found`));
  });

  test('promtool test rules: each alert fires on its input series and stays silent on the others', async () => {
    const result = await promtool(['test', 'rules', ALERT_TESTS]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /SUCCESS/);
    const tests = await readFile(ALERT_TESTS, 'utf8');
    for (const name of alertNames(await readFile(ALERTS, 'utf8'))) {
      // Each alert has a case where it fires (a non-empty exp_alerts) and one where it does not.
      assert.match(tests, new RegExp(`alertname: ${name}\\n\\s+exp_alerts:\\n\\s+- exp_labels`), `${name} fires somewhere`);
      assert.match(tests, new RegExp(`alertname: ${name}\\n\\s+exp_alerts: \\[\\]`), `${name} is silent somewhere`);
    }
  });

  test('the unit tests can fail: rules that never fire, or always fire, are rejected for every alert', async () => {
    const rules = await readFile(ALERTS, 'utf8');
    await copyFile(ALERT_TESTS, join(dir, 'alerts.test.yml'));
    for (const replacement of ['vector(0) == 1', 'vector(1)']) {
      await writeFile(join(dir, 'alerts.yml'), mutateExprs(rules, replacement));
      assert.equal((await promtool(['check', 'rules', join(dir, 'alerts.yml')])).code, 0, 'the mutant is valid PromQL');
      const result = await promtool(['test', 'rules', join(dir, 'alerts.test.yml')]);
      assert.notEqual(result.code, 0, `${replacement}: ${result.stdout}`);
      for (const name of alertNames(rules)) assert.ok(result.stdout.includes(`alertname: ${name},`) || result.stderr.includes(`alertname: ${name},`), `${replacement}: ${name} caught\n${result.stdout}${result.stderr}`);
    }
  });

  test('every metric the rules name is exported by certkeeper', async () => {
    const rules = await readFile(ALERTS, 'utf8');
    const named = [...rules.matchAll(/\bcertkeeper_[a-z0-9_]+/g)].map((m) => m[0]);
    assert.ok(named.length > 0);
    assert.deepEqual(named.filter((n) => !EXPORTED.has(n)), []);
  });

  test('every dashboard query parses as PromQL (promtool, Grafana variables substituted)', async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8'));
    const queries = dashboardQueries(dashboard);
    const file = join(dir, 'dashboard-queries.json');
    // A rule file is YAML, and JSON is YAML: one recording rule per query.
    await writeFile(file, JSON.stringify({ groups: [{ name: 'dashboard', rules: queries.map((q, i) => ({ record: `dashboard:query_${i}`, expr: asPromql(q.expr) })) }] }));
    const result = await promtool(['check', 'rules', file]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
  });
});

describe('monitoring/dashboard.json', () => {
  test('every query names at least one metric, and only metrics certkeeper exports (or up)', async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8'));
    const queries = dashboardQueries(dashboard);
    assert.ok(queries.length >= 10);
    for (const { where, expr } of queries) {
      const names = metricNames(expr);
      assert.ok(names.length > 0, `${where}: ${expr} names no metric`);
      for (const name of names) assert.ok(name === 'up' || EXPORTED.has(name), `${where}: ${name} is not exported by certkeeper`);
    }
    // The check itself catches a misspelt name.
    assert.deepEqual(metricNames('sum(rate(certkeeper_obtain_total{job="x"}[5m]))').filter((n) => !EXPORTED.has(n)), ['certkeeper_obtain_total']);
  });

  test('uses no external assets: one Prometheus data source variable, no URLs', async () => {
    const text = await readFile(DASHBOARD, 'utf8');
    assert.doesNotMatch(text, /https?:\/\//);
    const dashboard = JSON.parse(text);
    assert.deepEqual(dashboard.templating.list.filter((v: { type: string }) => v.type === 'datasource').map((v: { query: string }) => v.query), ['prometheus']);
  });
});
