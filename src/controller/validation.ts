/**
 * Request-body validation on a small JSON-Schema subset. The same schemas are
 * published in /openapi.json, so the description and the check never differ.
 */
export interface FieldSchema {
  type: 'string' | 'boolean' | 'integer' | 'number';
  enum?: string[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  description?: string;
}

export interface BodySchema {
  type: 'object';
  properties: Record<string, FieldSchema>;
  required?: string[];
  /** at least one of these fields, and only one */
  oneOf?: Array<{ required: string[] }>;
  additionalProperties: false;
}

export class RequestError extends Error {
  constructor(readonly field: string, problem: string, readonly status = 400) {
    super(`${field}: ${problem}`);
  }
}

/** Throws a RequestError naming the first offending field. */
export function validateBody<T>(schema: BodySchema, body: unknown): T {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new RequestError('body', 'must be a JSON object (Content-Type: application/json)');
  }
  const obj = body as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!(key in schema.properties)) throw new RequestError(key, `unknown field (allowed: ${Object.keys(schema.properties).join(', ')})`);
  }
  for (const key of schema.required ?? []) {
    if (obj[key] === undefined) throw new RequestError(key, 'is required');
  }
  if (schema.oneOf) {
    const present = schema.oneOf.filter((alt) => alt.required.every((k) => obj[k] !== undefined));
    const names = schema.oneOf.map((alt) => alt.required.join('+')).join(' or ');
    if (present.length === 0) throw new RequestError(names, 'one of them is required');
    if (present.length > 1) throw new RequestError(names, 'give only one of them');
  }
  for (const [key, f] of Object.entries(schema.properties)) {
    const v = obj[key];
    if (v === undefined) continue;
    const ok = f.type === 'integer' ? Number.isInteger(v) : f.type === 'number' ? typeof v === 'number' && Number.isFinite(v) : typeof v === f.type;
    if (!ok) throw new RequestError(key, `must be ${f.type === 'integer' ? 'an integer' : `a ${f.type}`} (got ${JSON.stringify(v)})`);
    if (f.enum && !f.enum.includes(v as string)) throw new RequestError(key, `must be one of ${f.enum.join(', ')} (got ${JSON.stringify(v)})`);
    if (f.minimum !== undefined && (v as number) < f.minimum) throw new RequestError(key, `must be >= ${f.minimum} (got ${v})`);
    if (f.maximum !== undefined && (v as number) > f.maximum) throw new RequestError(key, `must be <= ${f.maximum} (got ${v})`);
    if (f.minLength !== undefined && (v as string).length < f.minLength) throw new RequestError(key, `must not be empty`);
  }
  return obj as T;
}

const MIGRATION_TYPES = ['safe', 'risky', 'maintenance'];

/** Where a migration's SQL comes from: inline text or a file the controller reads (one of the two). */
const SQL_OR_FILE = {
  sql: { type: 'string', minLength: 1, description: 'migration SQL text' },
  file: { type: 'string', minLength: 1, description: 'path of a migration file readable by the controller' },
} as const;

export const SCHEMAS = {
  validate: {
    type: 'object',
    properties: {
      ...SQL_OR_FILE,
      name: { type: 'string', minLength: 1, description: 'file name for reports (default: basename of file)' },
      pgVersion: { type: 'integer', minimum: 90000, description: 'target server_version_num (default: the active side\'s)' },
      trace: { type: 'boolean', description: 'also run the file on a throwaway cluster holding the active side\'s schema (not with pgVersion)' },
    },
    oneOf: [{ required: ['sql'] }, { required: ['file'] }],
    additionalProperties: false,
  },
  migrate: {
    type: 'object',
    properties: {
      ...SQL_OR_FILE,
      name: { type: 'string', minLength: 1, description: 'ledger name (default: basename of file; required with sql for a stable ledger entry)' },
      type: { type: 'string', enum: MIGRATION_TYPES, description: 'the strategy allowed; a file whose class exceeds it is refused' },
      dryRun: { type: 'boolean', description: 'validate, check prerequisites, plan and estimate; change nothing' },
      noRollback: { type: 'boolean', description: 'no rollback point, no automatic rollback after a flip' },
      timeoutSeconds: { type: 'integer', minimum: 1, description: 'risky: the health-check timeout, how long health is watched after the switch and must hold (the watch window; default controller.watchWindowSeconds); never a budget that aborts a healthy migration' },
      switchDelaySeconds: { type: 'integer', minimum: 0, description: 'risky: wait this long between verification and the flip' },
    },
    required: ['type'],
    oneOf: [{ required: ['sql'] }, { required: ['file'] }],
    additionalProperties: false,
  },
  switch: {
    type: 'object',
    properties: {
      target: { type: 'string', enum: ['blue', 'green'], description: 'side to route all traffic to' },
      force: { type: 'boolean', description: 'switch although the target does not hold the migrations the active side holds (it stopped receiving writes)' },
    },
    required: ['target'],
    additionalProperties: false,
  },
  restore: {
    type: 'object',
    properties: { confirm: { type: 'boolean', description: 'must be true: restoring replaces the side\'s schema and data' } },
    required: ['confirm'],
    additionalProperties: false,
  },
} satisfies Record<string, BodySchema>;
