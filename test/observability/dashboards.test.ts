/**
 * docs/grafana/pgflip.json and docs/prometheus/pgflip-alerts.yml against the
 * metrics pgflip defines: every metric a query names is one the controller or
 * a proxy exports (histograms by their _bucket/_sum/_count series), every
 * label a selector or a `by` names is one of that metric's labels, and the
 * dashboard covers every contract name (docs/architecture.md, Metrics).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import prom from 'prom-client';
import YAML from 'yaml';
import { METRIC, migrationMetrics, proxyMetrics } from '../../src/observability/metrics';
import { lagGauges } from '../../src/sync/metrics';

const ROOT = path.resolve(__dirname, '../..');

/** Every series name a registry with all of pgflip's metrics exports, with its label names. */
function exportedSeries(): Map<string, Set<string>> {
  const reg = new prom.Registry();
  proxyMetrics(reg);
  migrationMetrics(reg);
  lagGauges(reg);
  const out = new Map<string, Set<string>>();
  for (const m of reg.getMetricsAsArray() as unknown as Array<{ name: string; labelNames?: string[]; constructor: { name: string } }>) {
    const labels = new Set(m.labelNames ?? []);
    if (m.constructor.name === 'Histogram') {
      out.set(`${m.name}_bucket`, new Set([...labels, 'le']));
      out.set(`${m.name}_sum`, labels);
      out.set(`${m.name}_count`, labels);
    } else out.set(m.name, labels);
  }
  return out;
}

const FUNCTIONS = new Set(['sum', 'min', 'max', 'avg', 'count', 'rate', 'irate', 'increase', 'histogram_quantile', 'changes', 'abs', 'clamp_min', 'topk', 'delta', 'deriv', 'time', 'vector', 'absent']);
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset']);

interface Use { metric: string; labels: string[] }

/** The metrics a PromQL expression reads, with the labels it names for each (selectors, and by/on lists). */
function metricsOf(expr: string): Use[] {
  const uses: Use[] = [];
  const grouping: string[] = [];
  let e = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\$__\w+/g, '5m').replace(/\[[^\]]*\]/g, '');
  e = e.replace(/\b(by|without|on|ignoring)\s*\(([^)]*)\)/g, (_m, _k, list: string) => { grouping.push(...list.split(',').map((s) => s.trim()).filter(Boolean)); return ' '; });
  for (const m of e.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*(\()?/g)) {
    const [, name, selector, call] = m;
    if (/^\d/.test(name) || KEYWORDS.has(name)) continue;
    if (call && !selector) {
      if (!FUNCTIONS.has(name)) throw new Error(`${expr}: ${name}( is not a PromQL function this test knows`);
      continue;
    }
    const labels = selector ? [...selector.matchAll(/(\w+)\s*(?:=~|!=|!~|=)/g)].map((x) => x[1]) : [];
    uses.push({ metric: name, labels });
  }
  // a by/on list groups by labels the metrics in the expression have
  if (grouping.length) for (const u of uses) u.labels.push(...grouping.map((g) => `?${g}`));
  return uses;
}

function dashboardExprs(): string[] {
  const d = JSON.parse(readFileSync(path.join(ROOT, 'docs/grafana/pgflip.json'), 'utf8'));
  const out: string[] = [];
  const walk = (panels: Array<{ targets?: Array<{ expr?: string }>; panels?: unknown[] }>) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push(t.expr);
      if (p.panels) walk(p.panels as never);
    }
  };
  walk(d.panels);
  for (const a of d.annotations?.list ?? []) if (a.expr) out.push(a.expr);
  return out;
}

function ruleExprs(): Array<{ alert: string; expr: string }> {
  const doc = YAML.parse(readFileSync(path.join(ROOT, 'docs/prometheus/pgflip-alerts.yml'), 'utf8'));
  return doc.groups.flatMap((g: { rules: Array<{ alert: string; expr: string }> }) => g.rules.map((r) => ({ alert: r.alert, expr: String(r.expr) })));
}

function check(where: string, expr: string, series: Map<string, Set<string>>): string[] {
  const problems: string[] = [];
  const uses = metricsOf(expr);
  if (!uses.length) problems.push(`${where}: names no metric: ${expr}`);
  for (const u of uses) {
    const labels = series.get(u.metric);
    if (!labels) { problems.push(`${where}: ${u.metric} is not exported`); continue; }
    for (const l of u.labels) {
      if (l.startsWith('?')) {
        // grouping labels: one of the expression's metrics must have it
        const name = l.slice(1);
        if (!uses.some((x) => series.get(x.metric)?.has(name))) problems.push(`${where}: no metric in "${expr}" has the label ${name}`);
      } else if (!labels.has(l)) problems.push(`${where}: ${u.metric} has no label ${l} (it has ${[...labels].join(', ') || 'none'})`);
    }
  }
  return problems;
}

test('the Grafana dashboard is valid JSON and queries only exported metrics and their labels', () => {
  const series = exportedSeries();
  const exprs = dashboardExprs();
  expect(exprs.length).toBeGreaterThan(10);
  const problems = exprs.flatMap((e, i) => check(`dashboard query ${i + 1}`, e, series));
  expect(problems).toEqual([]);
  const d = JSON.parse(readFileSync(path.join(ROOT, 'docs/grafana/pgflip.json'), 'utf8'));
  expect(d).toMatchObject({ title: 'pgflip', uid: 'pgflip' });
  // panel ids are unique (Grafana refuses duplicates on import)
  const ids = d.panels.map((p: { id: number }) => p.id);
  expect(new Set(ids).size).toBe(ids.length);
});

test('the dashboard covers every metric name of the contract: flip pause, sessions, queries and errors by side and SQLSTATE class, sync lag, migration progress', () => {
  const used = new Set(dashboardExprs().flatMap((e) => metricsOf(e).map((u) => u.metric.replace(/_(bucket|sum|count)$/, ''))));
  for (const name of Object.values(METRIC)) expect([name, used.has(name)]).toEqual([name, true]);
  const errorsQuery = dashboardExprs().find((e) => e.includes(METRIC.queryErrors) && e.includes('sqlstate_class'));
  expect(errorsQuery).toMatch(/by \(side, sqlstate_class\)/);
});

test('the alert rules read only exported metrics: lag too high, a side down, a migration failed, a flip aborted', () => {
  const series = exportedSeries();
  const rules = ruleExprs();
  expect(rules.map((r) => r.alert)).toEqual(expect.arrayContaining(['PgflipSyncLagHigh', 'PgflipSideDown', 'PgflipMigrationFailed', 'PgflipFlipAborted']));
  expect(rules.flatMap((r) => check(r.alert, r.expr, series))).toEqual([]);
});

test('the checker itself: an unknown metric, an unknown label and an unknown function are reported', () => {
  const series = exportedSeries();
  expect(check('x', 'rate(pgflip_querys_total[5m])', series)).toEqual(['x: pgflip_querys_total is not exported']);
  expect(check('x', 'pgflip_queries_total{sqlstate="23505"}', series)).toEqual(['x: pgflip_queries_total has no label sqlstate (it has side)']);
  expect(check('x', 'sum by (colour) (pgflip_queries_total)', series)).toEqual(['x: no metric in "sum by (colour) (pgflip_queries_total)" has the label colour']);
  expect(() => metricsOf('frobnicate(pgflip_queries_total)')).toThrow(/frobnicate/);
});
