/**
 * The controller's HTTP API (a contract: docs/controller.md). One route table
 * drives both the express router and /openapi.json, so the description lists
 * exactly what the server answers.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import express, { NextFunction, Request, Response } from 'express';
import { Side, SIDES } from '../side';
import { logger, redactUrl } from '../observability/logger';
import { AuditLog } from './audit';
import type { ObjectDrift } from './drift';
import { requireToken, tokenMatches } from './auth';
import { probeSide, proxyAdminUrls, scrapeTraffic, windowStats } from './health';
import { controllerMetrics } from './metrics';
import type { Orchestrator } from './orchestrator';
import { checksumOf, ConflictError, NotFoundError, STORE_KEYS } from './records';
import { servingCompat } from './compat';
import { StateStoreUnreachable } from '../state/store';
import type { ClassifyPort } from './ports';
import { RollbackPoints } from './rollback-points';
import { MigrationClass, MigrationRequest } from './types';
import { BodySchema, RequestError, SCHEMAS, validateBody } from './validation';
import type { Baseline } from './watch';
import type { Overview } from './overview';
import { statusPage } from './status-page';
import { sleep } from '../util/sleep';

export interface ApiDeps {
  orchestrator: Orchestrator;
  classifier: ClassifyPort;
  rollbackPoints: RollbackPoints;
  audit: AuditLog;
  apiToken: string | undefined;
  /** the status page's data (GET /overview, GET /events) */
  overview: Overview;
  /** the two sides' schema drift for /status; absent: not reported */
  drift?: ObjectDrift;
}

type Handler = (req: Request, res: Response) => Promise<unknown>;

/** `?limit=` of the list routes: 50 by default, 1 to 1000. */
function queryLimit(req: Request): number {
  const limit = req.query.limit === undefined ? 50 : Number(req.query.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new RequestError('limit', 'must be an integer from 1 to 1000');
  return limit;
}

/** POST /migrations/:id/release and …/finalize: act on the migration's previous schema version, answer its record. */
const schemaVersionAction = (act: (o: ApiDeps['orchestrator'], id: string) => Promise<{ id: string }>, outcome: string) =>
  (d: ApiDeps): Handler => async (req, res) => {
    const rec = await act(d.orchestrator, String(req.params.id));
    res.locals.target = rec.id;
    res.locals.outcome = outcome;
    res.json(rec);
  };

interface RouteDef {
  method: 'get' | 'post';
  path: string;
  summary: string;
  auth: boolean;
  body?: BodySchema;
  /** audit action name; every mutating route has one */
  audit?: string;
  responses: Record<string, string>;
  handler: (d: ApiDeps) => Handler;
}

const readSql = async (body: { sql?: string; file?: string }): Promise<string> => {
  if (body.sql !== undefined) return body.sql;
  try {
    return await readFile(body.file!, 'utf8');
  } catch (e) {
    throw new RequestError('file', `cannot read ${body.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
};

async function health(d: ApiDeps): Promise<{ status: 'ok' | 'degraded'; components: Record<string, unknown> }> {
  const o = d.orchestrator;
  const [blue, green, active] = await Promise.all([probeSide(o.sideUrl('blue')), probeSide(o.sideUrl('green')), o.activeSide().catch(() => undefined)]);
  const proxies = await o.store.liveProxies().catch(() => []);
  const reports = await o.store.healthReports().catch(() => []);
  const components: Record<string, unknown> = {
    controller: { up: true, leader: o.isLeader },
    proxies: { up: proxies.length > 0 ? true : null, count: proxies.length, ids: proxies.map((p) => p.id), reports: reports.length },
    blue: { ...blue, active: active?.active === 'blue' },
    green: { ...green, active: active?.active === 'green' },
  };
  // degraded: a side down, or a proxy reporting the active side down
  const activeDownAtProxy = active ? reports.some((r) => r.sides[active.active]?.up === false) : false;
  const status = blue.up && green.up && o.isLeader && !activeDownAtProxy ? 'ok' : 'degraded';
  return { status, components };
}

const ROUTES: RouteDef[] = [
  {
    method: 'get', path: '/', summary: 'the status page (text/html) for a browser; for any other client a JSON index of the routes', auth: false,
    responses: { 200: 'text/html when the client prefers it (a browser), else {name, version, statusPage, routes}' },
    handler: () => async (req, res) => {
      if (req.accepts(['json', 'html']) === 'html') {
        const page = statusPage();
        res.set({
          'content-type': 'text/html; charset=utf-8',
          // the page's own inline script and style only; no frames (a restore button must not be clickjacked)
          'content-security-policy': page.csp,
          'x-frame-options': 'DENY',
          'x-content-type-options': 'nosniff',
          'referrer-policy': 'no-referrer',
          'cache-control': 'no-store',
        });
        res.send(page.html);
        return;
      }
      res.json({ name: 'pgflip controller', version: require('../../package.json').version, statusPage: 'GET / with Accept: text/html', openapi: '/openapi.json', routes: ROUTE_LIST });
    },
  },
  {
    method: 'get', path: '/overview', summary: 'everything the status page shows, as one JSON snapshot', auth: false,
    responses: { 200: 'pair, sides, drift, traffic, fleet, migration, lag series, watch window, history, audit' },
    handler: (d) => async (_req, res) => res.json(await d.overview.snapshot()),
  },
  {
    method: 'get', path: '/events', summary: 'Server-Sent Events: the /overview snapshot every second (event "overview")', auth: false,
    responses: { 200: 'text/event-stream' },
    handler: (d) => (req, res) => new Promise<void>((resolve) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      res.write('retry: 2000\n\n');
      const off = d.overview.subscribe((s) => { res.write(`event: overview\ndata: ${JSON.stringify(s)}\n\n`); });
      const done = () => { off(); resolve(); };
      req.on('close', done);
      res.on('error', done);
    }),
  },
  {
    method: 'get', path: '/audit', summary: 'the audit log\'s newest entries, newest first (token fingerprints only)', auth: false,
    responses: { 200: 'list of audit entries' },
    handler: (d) => async (req, res) => {
      const limit = queryLimit(req);
      res.json(await d.audit.tail(limit));
    },
  },
  {
    method: 'get', path: '/health', summary: 'liveness of controller, proxies, blue and green', auth: false,
    responses: { 200: 'status ok or degraded, one entry per component' },
    handler: (d) => async (_req, res) => res.json(await health(d)),
  },
  {
    method: 'get', path: '/status', summary: 'active side, epoch, both sides\' health and lag, the running migration', auth: false,
    responses: { 200: 'status' },
    handler: (d) => async (req, res) => {
      const o = d.orchestrator;
      const [active, h, running, flip, proxies, [last], compat, reports] = await Promise.all([
        o.activeSide(), health(d), o.current(), o.store.currentFlip().catch(() => null), o.store.liveProxies().catch(() => []), o.list(1).catch(() => []),
        servingCompat(o.store).catch(() => null), o.store.healthReports().catch(() => []),
      ]);
      // /status needs no token: the objects themselves only for a caller who presents one
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.get('authorization') ?? '');
      const authed = !!(bearer && d.apiToken && tokenMatches(d.apiToken, bearer[1]));
      const drift = (await d.drift?.get(authed)) ?? null;
      const schemaDrift = drift && !authed ? { ...drift, differences: undefined } : drift;
      // sessions per schema version over the proxies' reports for the migration serving one
      const versions = compat ? reports.reduce((sum, r) => r.schemaVersions?.migrationId === compat.migrationId
        ? { old: sum.old + r.schemaVersions.old, new: sum.new + r.schemaVersions.new } : sum, { old: 0, new: 0 }) : null;
      const sides: Record<string, unknown> = {};
      for (const s of SIDES) sides[s] = { url: redactUrl(o.sideUrl(s)), ...(h.components[s] as object), lag: running?.side === s ? running.lag ?? null : null };
      res.json({
        active: active.active, epoch: active.epoch, health: h.status, leader: o.isLeader, sides, migration: running ?? null, lastFlip: flip,
        // the newest migration, also when it has ended: how it ended is what an operator looks for
        lastMigration: last ? { id: last.id, name: last.name, type: last.type, state: last.state, outcome: last.outcome ?? null, finishedAt: last.finishedAt ?? null } : null,
        proxies: proxies.map((p) => ({ id: p.id, host: p.host, startedAt: new Date(p.startedAt).toISOString(), meta: p.meta })),
        // the previous schema version a migration serves, and the sessions on each version
        schemaVersions: compat ? { ...compat, sessions: versions } : null,
        // what one side's schema has that the other's has not (expected after a risky migration)
        schemaDrift,
      });
    },
  },
  {
    method: 'post', path: '/migrations/validate', summary: 'classify a migration: the validation report', auth: true, body: SCHEMAS.validate,
    audit: 'migration.validate', responses: { 200: 'validation report', 400: 'bad request' },
    handler: (d) => async (req, res) => {
      const body = validateBody<{ sql?: string; file?: string; name?: string; pgVersion?: number; trace?: boolean }>(SCHEMAS.validate, req.body);
      if (body.trace && body.pgVersion) throw new RequestError('trace', 'runs on the active side\'s schema and version: leave out pgVersion');
      const sql = await readSql(body);
      const name = body.name ?? (body.file ? path.basename(body.file) : '<sql>');
      const active = await d.orchestrator.activeSide();
      const report = await d.classifier.classify(sql, {
        fileName: body.file ?? name,
        pgVersion: body.pgVersion,
        databaseUrl: body.pgVersion ? undefined : d.orchestrator.sideUrl(active.active),
        // asked for: a trace that cannot run is an error, as with `pgflip validate --trace`
        ...(body.trace && !body.pgVersion ? { trace: 'on' as const } : {}),
      });
      res.locals.outcome = report.isValid ? `valid (${report.classification})` : 'invalid';
      res.json(report);
    },
  },
  {
    method: 'post', path: '/migrations', summary: 'start a migration; 202 {id}, then poll GET /migrations/{id}', auth: true, body: SCHEMAS.migrate,
    audit: 'migration.submit', responses: { 202: '{id}', 400: 'bad request', 409: 'a migration is running' },
    handler: (d) => async (req, res) => {
      const body = validateBody<{ sql?: string; file?: string; name?: string; type: MigrationClass; dryRun?: boolean; noRollback?: boolean; timeoutSeconds?: number; switchDelaySeconds?: number }>(SCHEMAS.migrate, req.body);
      const sql = await readSql(body);
      const name = body.name ?? (body.file ? path.basename(body.file) : `inline-${checksumOf(sql).slice(0, 12)}.sql`);
      const r: MigrationRequest = {
        name, sql, type: body.type, dryRun: body.dryRun ?? false, noRollback: body.noRollback ?? false,
        timeoutSeconds: body.timeoutSeconds, switchDelaySeconds: body.switchDelaySeconds ?? 0,
      };
      const rec = await d.orchestrator.submit(r, res.locals.who);
      res.locals.target = rec.id;
      res.locals.outcome = 'accepted';
      res.locals.detail = { name, type: r.type, dryRun: r.dryRun, noRollback: r.noRollback };
      res.status(202).json({ id: rec.id, state: rec.state });
    },
  },
  {
    method: 'get', path: '/migrations', summary: 'history, newest first', auth: false,
    responses: { 200: 'list of migration records' },
    handler: (d) => async (req, res) => {
      const limit = queryLimit(req);
      res.json(await d.orchestrator.list(limit));
    },
  },
  {
    method: 'get', path: '/migrations/:id', summary: 'state, steps with timings, progress 0..1, errors', auth: false,
    responses: { 200: 'migration record', 404: 'unknown id' },
    handler: (d) => async (req, res) => res.json(await d.orchestrator.get(String(req.params.id))),
  },
  {
    method: 'post', path: '/migrations/:id/abort', summary: 'stop a running migration safely (back to the state before it)', auth: true,
    audit: 'migration.abort', responses: { 202: 'abort requested', 404: 'unknown id', 409: 'not running' },
    handler: (d) => async (req, res) => {
      const rec = await d.orchestrator.abort(String(req.params.id));
      res.locals.target = rec.id;
      res.locals.outcome = 'abort requested';
      res.status(202).json({ id: rec.id, state: rec.state, abortRequested: true });
    },
  },
  {
    method: 'post', path: '/migrations/:id/release', summary: 'new sessions get the migration\'s new schema version; sessions alive keep theirs', auth: true,
    audit: 'migration.release', responses: { 200: 'the record', 404: 'unknown id', 409: 'no previous schema version served' },
    handler: schemaVersionAction((o, id) => o.release(id), 'released'),
  },
  {
    method: 'post', path: '/migrations/:id/finalize', summary: 'drop the migration\'s previous schema version (its compatibility schema): sessions still on it see the new schema', auth: true,
    audit: 'migration.finalize', responses: { 200: 'the record', 404: 'unknown id', 409: 'running, or no previous schema version served' },
    handler: schemaVersionAction((o, id) => o.finalize(id), 'finalized'),
  },
  {
    method: 'post', path: '/switch', summary: 'manual flip of every proxy to a side, with the flip protocol\'s guarantees', auth: true, body: SCHEMAS.switch,
    audit: 'switch', responses: { 200: 'new active side and epoch', 409: 'a migration is running', 503: 'the state store is unreachable: flips are refused' },
    handler: (d) => async (req, res) => {
      const body = validateBody<{ target: Side; force?: boolean }>(SCHEMAS.switch, req.body);
      res.locals.target = body.target;
      const r = await d.orchestrator.switchTo(body.target, { force: body.force === true });
      res.locals.outcome = r.changed ? `switched (epoch ${r.epoch})` : 'already active';
      res.json(r);
    },
  },
  {
    method: 'get', path: '/rollback-points', summary: 'rollback points, newest first', auth: false,
    responses: { 200: 'list' },
    handler: (d) => async (_req, res) => res.json((await d.rollbackPoints.list()).map(({ file, ...p }) => ({ ...p, file: path.basename(file) }))),
  },
  {
    method: 'post', path: '/rollback-points/:id/restore', summary: 'replace the side\'s schema and data with the rollback point', auth: true, body: SCHEMAS.restore,
    audit: 'rollback.restore', responses: { 200: 'restored', 400: 'confirm missing', 404: 'unknown id', 409: 'a migration is running' },
    handler: (d) => async (req, res) => {
      const body = validateBody<{ confirm: boolean }>(SCHEMAS.restore, req.body);
      if (!body.confirm) throw new RequestError('confirm', 'must be true: restoring replaces the side\'s schema and data');
      const id = String(req.params.id);
      res.locals.target = id;
      const point = await d.rollbackPoints.get(id);
      if (!point) throw new NotFoundError(`rollback point ${id} not found`);
      if (d.orchestrator.runningId) throw new ConflictError(`migration ${d.orchestrator.runningId} is running; restore after it ends`);
      await d.rollbackPoints.restore(point, d.orchestrator.sideUrl(point.side));
      res.locals.outcome = `restored ${point.side}`;
      res.json({ restored: id, side: point.side, database: point.database });
    },
  },
  {
    method: 'get', path: '/baseline', summary: 'the latency and error-rate baseline the watch window compares with', auth: false,
    responses: { 200: 'baseline or null' },
    handler: (d) => async (_req, res) => res.json((await d.orchestrator.store.getJson<Baseline>(STORE_KEYS.baseline))?.value ?? null),
  },
  {
    method: 'post', path: '/baseline', summary: 'measure the active side through the proxies for a few seconds and store it as the baseline', auth: true,
    body: { type: 'object', properties: { seconds: { type: 'integer', minimum: 1, maximum: 300, description: 'measurement length (default 5)' } }, additionalProperties: false },
    audit: 'baseline.update', responses: { 200: 'the stored baseline', 409: 'no traffic to measure' },
    handler: (d) => async (req, res) => {
      const body = validateBody<{ seconds?: number }>({ type: 'object', properties: { seconds: { type: 'integer', minimum: 1, maximum: 300 } }, additionalProperties: false }, req.body ?? {});
      const b = await measureBaseline(d.orchestrator, (body.seconds ?? 5) * 1000);
      await d.orchestrator.store.setJson(STORE_KEYS.baseline, b);
      res.locals.outcome = `p95 ${b.p95Ms} ms`;
      res.json(b);
    },
  },
  {
    method: 'get', path: '/metrics', summary: 'Prometheus text', auth: false,
    responses: { 200: 'text/plain; version=0.0.4' },
    handler: () => async (_req, res) => {
      const { registry } = controllerMetrics();
      res.type(registry.contentType).send(await registry.metrics());
    },
  },
  {
    method: 'get', path: '/openapi.json', summary: 'this description', auth: false,
    responses: { 200: 'OpenAPI 3.0 document' },
    handler: () => async (_req, res) => res.json(openapi()),
  },
];

export async function measureBaseline(o: Orchestrator, ms: number): Promise<Baseline> {
  const urls = await proxyAdminUrls(o.cfg.controller.proxyAdminUrls, o.store);
  if (!urls.length) throw new ConflictError('no proxy admin URL known (controller.proxyAdminUrls or proxy registrations): nothing to measure');
  const { active } = await o.activeSide();
  const before = (await scrapeTraffic(urls)).traffic[active];
  await sleep(ms);
  const after = (await scrapeTraffic(urls)).traffic[active];
  const s = windowStats(before, after);
  if (!s.queries || s.p95Ms === undefined) throw new ConflictError(`no queries on ${active} through the proxies in ${ms / 1000}s: nothing to measure`);
  return { p95Ms: s.p95Ms, errorRate: s.errorRate ?? 0, queries: s.queries, measuredAt: new Date().toISOString() };
}

export function openapi(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES) {
    const p = r.path.replace(/:(\w+)/g, '{$1}');
    const params = [...r.path.matchAll(/:(\w+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const responses: Record<string, unknown> = {};
    for (const [code, description] of Object.entries(r.responses)) responses[code] = { description };
    if (r.auth) { responses['401'] = { description: 'no bearer token' }; responses['403'] = { description: 'wrong token' }; }
    if (r.body) responses['400'] ??= { description: 'invalid body: {error, field}' };
    (paths[p] ??= {})[r.method] = {
      summary: r.summary,
      ...(params.length ? { parameters: params } : {}),
      ...(r.auth ? { security: [{ bearer: [] }] } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: r.body } } } } : {}),
      responses,
    };
  }
  return {
    openapi: '3.0.3',
    info: { title: 'pgflip controller', version: require('../../package.json').version },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'PGFLIP_API_TOKEN' } } },
    paths,
  };
}

/** The routes the app serves, as "METHOD /path" (tests compare them with openapi()). */
export const ROUTE_LIST = ROUTES.map((r) => `${r.method.toUpperCase()} ${r.path}`);

export function createApp(d: ApiDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '16mb' }));
  for (const r of ROUTES) {
    const h = r.handler(d);
    const chain: express.RequestHandler[] = [];
    chain.push((req, res, next) => {
      // the audit line is on disk before the caller sees the answer, refusals included
      if (r.audit) {
        const send = res.json.bind(res);
        res.json = ((body: { error?: string } | undefined) => {
          if (res.locals.audited) return send(body);
          res.locals.audited = true;
          const ok = res.statusCode < 400;
          void d.audit.write({
            who: res.locals.who ?? 'anonymous',
            via: res.locals.via,
            action: r.audit!,
            target: res.locals.target ?? (req.params?.id as string | undefined),
            outcome: ok ? res.locals.outcome ?? 'ok'
              : res.statusCode === 401 || res.statusCode === 403 ? `denied (${res.statusCode})` : `error (${res.statusCode}): ${body?.error ?? ''}`,
            ...(res.locals.detail ? { detail: res.locals.detail } : {}),
          }).finally(() => send(body));
          return res;
        }) as typeof res.json;
      }
      next();
    });
    if (r.auth) chain.push(requireToken(d.apiToken));
    chain.push((req, res, next) => { h(req, res).catch(next); });
    app[r.method](r.path, ...chain);
  }
  app.use((req, res) => { res.status(404).json({ error: `no route ${req.method} ${req.path}` }); });
  app.use((err: Error & { type?: string; status?: number }, _req: Request, res: Response, _next: NextFunction) => {
    if (err.type === 'entity.parse.failed') { res.status(400).json({ error: 'body: invalid JSON', field: 'body' }); return; }
    if (err instanceof RequestError) { res.status(err.status).json({ error: err.message, field: err.field }); return; }
    if (err instanceof NotFoundError) { res.status(404).json({ error: err.message }); return; }
    if (err instanceof ConflictError) { res.status(409).json({ error: err.message }); return; }
    if (err instanceof StateStoreUnreachable) { res.status(503).json({ error: err.message }); return; }
    if (err.type && err.status && err.status < 500) { res.status(err.status).json({ error: `body: ${err.message}`, field: 'body' }); return; }
    logger().error({ err: err.message }, 'API error');
    res.status(500).json({ error: err.message });
  });
  return app;
}
