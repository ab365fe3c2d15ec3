/**
 * The Grafana dashboard and the Prometheus alert rules in deploy/ ask for metrics the service
 * really exposes: every metric name in their PromQL is on the /metrics of a running replica
 * that has served a little traffic (REST and socket sends, a history page, a resume, a
 * notification flush, readiness probes). The traffic also shows the new metrics moving.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import t from 'tap';
import WebSocket from 'ws';
import { parse as parseYaml } from 'yaml';
import { createMemoryBus } from '../src/bus/bus-memory.js';
import { buildTestApp, testDatabase } from './helpers/app.js';
import { call, createConversation, register } from './helpers/api.js';
import { read } from './helpers/deploy-files.js';

/** Recorded by Prometheus itself for every target, not exposed by any: the only name allowed without /metrics. */
const PROMETHEUS_OWN = new Set(['up']);
const WAIT_MS = 5000;

// -- PromQL: the metric names of an expression ---------------------------------------------------

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);

/**
 * The metric names an expression selects: identifiers outside strings, label matchers,
 * ranges and grouping clauses that are not function or aggregation calls. Grafana's
 * `$__rate_interval` and the like sit in ranges and go with them.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = [...stripped.matchAll(/(?<![\w:$.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()/g)].map((m) => m[1] ?? '');
  return [...new Set(names.filter((name) => !KEYWORDS.has(name.toLowerCase()) && !/^\d/.test(name)))];
}

t.test('metricNames reads PromQL', async (t) => {
  t.same(metricNames('sum by (kind) (rate(chat_x_total{kind!~"a.*"}[5m])) > 0'), ['chat_x_total']);
  t.same(metricNames('histogram_quantile(0.99, sum by (le, route) (rate(h_bucket{route!~"/ws/.*"}[$__rate_interval])))'), ['h_bucket']);
  t.same(metricNames('a / on (pod) group_left b and c offset 5m'), ['a', 'b', 'c']);
  t.same(metricNames('up{job=~".*chat.*"} == 0'), ['up']);
});

// -- the files ---------------------------------------------------------------------------------

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
}
const alerts = parseYaml(read('deploy/prometheus-alerts.yaml')) as { groups: { name: string; rules: Rule[] }[] };
interface Panel {
  title: string;
  type: string;
  targets?: { expr: string; refId: string }[];
  datasource?: { type: string };
  panels?: Panel[];
}
const dashboard = JSON.parse(read('deploy/grafana-dashboard.json')) as { title: string; uid: string; schemaVersion: number; panels: Panel[] };
const panels = dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);

t.test('the alert rules are a Prometheus rule file with the alerts operators need', async (t) => {
  const rules = alerts.groups.flatMap((group) => group.rules);
  t.ok(alerts.groups.length > 0 && alerts.groups.every((group) => group.name && group.rules.length > 0), 'named groups of rules');
  for (const rule of rules) {
    t.ok(rule.alert && rule.expr, `${rule.alert}: an alert with an expression`);
    t.match(rule.for ?? '', /^\d+[smh]$/, `${rule.alert}: for a duration`);
  }
  const byMetric = (metric: string) => rules.filter((rule) => metricNames(rule.expr).includes(metric)).map((rule) => rule.alert);
  t.ok(byMetric('chat_ready').length > 0, 'replica not ready');
  t.ok(byMetric('chat_bus_publish_failures_total').length > 0, 'publish failures');
  t.ok(byMetric('chat_slow_consumer_disconnects_total').length > 0, 'slow-consumer closes');
  t.ok(rules.some((rule) => /histogram_quantile\(0\.99,/.test(rule.expr) && /> ?[\d.]+$/.test(rule.expr.trim())), 'p99 above a bound');
  t.ok(byMetric('chat_db_errors_total').length > 0, 'database errors');
  t.ok(byMetric('chat_http_unavailable_responses_total').length > 0, '503s');
});

t.test('the dashboard is a Grafana dashboard of Prometheus queries', async (t) => {
  t.ok(dashboard.title && dashboard.uid, 'title and uid');
  t.ok(dashboard.schemaVersion >= 30, 'a current schema version');
  const queried = panels.filter((panel) => panel.targets?.length);
  t.ok(queried.length >= 10, `${queried.length} panels with queries`);
  for (const panel of queried) {
    t.equal(panel.datasource?.type, 'prometheus', `${panel.title}: a Prometheus data source`);
    t.ok(panel.targets?.every((target) => target.expr && target.refId), `${panel.title}: every target has an expression and a refId`);
  }
});

// -- a running replica ------------------------------------------------------------------------

/** Sample names on /metrics, and the names of metrics declared there (with their histogram series). */
function exposed(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\w+)/.exec(line);
    if (type) {
      const [, name = '', kind] = type;
      names.add(name);
      if (kind === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
      continue;
    }
    const sample = /^([a-zA-Z_:][\w:]*)[{ ]/.exec(line);
    if (sample?.[1]) names.add(sample[1]);
  }
  return names;
}

/** The sum of a metric's samples whose labels include `labels`. */
function value(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, v]) => found[key] === v)) total += Number(match[3]);
  }
  return total;
}

t.test('every metric the dashboard and the alerts name is on a running replica', async (t) => {
  const { database } = await testDatabase(t, 'pglite');
  const app = await buildTestApp(t, { database, bus: createMemoryBus() });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  const scrape = async () => (await app.inject({ method: 'GET', url: '/metrics' })).body;
  const until = async (done: (text: string) => boolean): Promise<string> => {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const text = await scrape();
      if (done(text) || Date.now() > deadline) return text;
      await delay(10);
    }
  };

  // A little traffic: probes, sends over REST and a socket, a history page, a resume, notifications.
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, 'ready');
  const alice = await register(app);
  const bob = await register(app);
  const conversation = await createConversation(app, alice, [bob]);
  for (const content of ['one', 'two', 'three']) {
    t.equal((await call(app, 'POST', `/api/conversations/${conversation}/messages/`, { token: alice.token, body: { content } })).status, 201);
  }
  t.equal((await call(app, 'GET', `/api/conversations/${conversation}/messages/`, { token: bob.token })).status, 200, 'a history page');
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/chat/${conversation}/?token=${bob.token}&last_seq=1`);
  const events: { type: string }[] = [];
  ws.on('message', (data) => events.push(JSON.parse(data.toString()) as { type: string }));
  await once(ws, 'open');
  ws.send(JSON.stringify({ type: 'chat_message', message: 'over a socket' }));
  const deadline = Date.now() + WAIT_MS;
  while (events.filter((event) => event.type === 'chat.message').length < 3 && Date.now() < deadline) await delay(10);
  t.equal(events.filter((event) => event.type === 'chat.message').length, 3, 'two replayed, one live');
  await app.notifications.flush();

  const text = await until((body) => value(body, 'chat_replay_events_count') >= 1);
  const names = exposed(text);
  const wanted = new Map<string, string[]>();
  const want = (names: string[], where: string) => {
    for (const name of names) wanted.set(name, [...(wanted.get(name) ?? []), where]);
  };
  for (const rule of alerts.groups.flatMap((group) => group.rules)) want(metricNames(rule.expr), `alert ${rule.alert}`);
  for (const panel of panels) for (const target of panel.targets ?? []) want(metricNames(target.expr), `panel "${panel.title}"`);
  t.ok(wanted.size >= 20, `${wanted.size} metric names used`);
  for (const [name, where] of wanted) {
    if (PROMETHEUS_OWN.has(name)) continue;
    t.ok(names.has(name), `${name} (${where.join(', ')}) is on /metrics`);
  }

  // The operator's first questions have answers: the new metrics moved with the traffic.
  t.equal(value(text, 'chat_ready'), 1, 'chat_ready: the last /readyz passed');
  t.ok(value(text, 'chat_send_batch_size_count') >= 4, 'send batches observed');
  t.equal(value(text, 'chat_send_queue_depth'), 0, 'and the queue drained');
  for (const statement of ['send_batch', 'history_page', 'event_log_read', 'notification_upsert']) {
    t.ok(value(text, 'chat_db_statement_duration_seconds_count', { statement }) >= 1, `statement latency: ${statement}`);
  }
  t.equal(value(text, 'chat_db_pool_size'), 1, 'pool size (PGlite: one connection)');
  t.ok(value(text, 'chat_db_queries_in_flight') >= 0, 'queries in flight');
  t.ok(value(text, 'chat_notification_flush_seconds_count', { outcome: 'written' }) >= 1, 'a notification flush written');
  t.ok(value(text, 'chat_notification_flush_size_sum') >= 1, 'with at least one pair');
  t.equal(value(text, 'chat_replay_events_sum'), 2, 'the resume replayed two events');
  t.equal(value(text, 'chat_open_sockets', { kind: 'chat' }), 1, 'one chat socket open');
  ws.close();
});
