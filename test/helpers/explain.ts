/**
 * EXPLAIN checks for recorded statements (test/helpers/database.ts `recordingPostgres`): each
 * statement's plan for its values and, for reads, the generic plan of a prepared statement,
 * with no sequential scan on the watched tables.
 */
import postgres from 'postgres';
import type { Test } from 'tap';
import type { DatabaseHandle } from '../../src/db/client.js';
import { freshPostgresDatabase, recordingPostgres, type RecordedQuery } from './database.js';

export interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
  [key: string]: unknown;
}

/** `Limit(Nested Loop(Index Scan participants_pkey, …))`, for the log. */
export function outline(node: PlanNode): string {
  const scan = node['Index Name'] ?? node['Relation Name'];
  const children = (node.Plans ?? []).map(outline);
  return `${node['Node Type']}${scan ? ` ${String(scan)}` : ''}${children.length ? `(${children.join(', ')})` : ''}`;
}

export function seqScans(node: PlanNode, watched: ReadonlySet<string>, found: string[] = []): string[] {
  if (node['Node Type'] === 'Seq Scan' && node['Relation Name'] && watched.has(node['Relation Name'])) found.push(node['Relation Name']);
  for (const child of node.Plans ?? []) seqScans(child, watched, found);
  return found;
}

/** Every index a plan reads. */
export function indexesOf(node: PlanNode, found = new Set<string>()): Set<string> {
  if (node['Index Name']) found.add(node['Index Name']);
  for (const child of node.Plans ?? []) indexesOf(child, found);
  return found;
}

/**
 * `execute NAME(...)` for a prepared statement, its parameters as untyped literals: they take
 * the prepared statement's parameter types.
 */
export function executeCall(name: string, params: readonly unknown[]): string {
  const literal = (value: unknown) => (value === null || value === undefined ? 'null' : `'${String(value).replace(/'/g, "''")}'`);
  return params.length > 0 ? `execute ${name}(${params.map(literal).join(', ')})` : `execute ${name}`;
}

type Explained = { 'QUERY PLAN': { Plan: PlanNode }[] }[];

/** The plans of `query`: for its values, and (reads only) PostgreSQL's generic plan. */
export async function plansOf(admin: postgres.Sql, query: RecordedQuery, name: string): Promise<PlanNode[]> {
  const params = query.params as postgres.ParameterOrJSON<never>[];
  const custom = await admin.unsafe<Explained>(`explain (format json) ${query.sql}`, params);
  const plans = [custom[0]!['QUERY PLAN'][0]!.Plan];
  if (!/^\s*select\b/i.test(query.sql)) return plans;
  await admin.unsafe(`prepare ${name} as ${query.sql}`);
  await admin.unsafe(`set plan_cache_mode = force_generic_plan`);
  const generic = await admin.unsafe<Explained>(`explain (format json) ${executeCall(name, query.params)}`);
  await admin.unsafe(`reset plan_cache_mode`);
  await admin.unsafe(`deallocate ${name}`);
  plans.push(generic[0]!['QUERY PLAN'][0]!.Plan);
  return plans;
}

/** Asserts no plan of any statement seq-scans a watched table. */
export async function expectIndexedPlans(t: Test, admin: postgres.Sql, statements: { label: string; query: RecordedQuery }[], watched: ReadonlySet<string>) {
  let n = 0;
  for (const { label, query } of statements) {
    for (const [i, plan] of (await plansOf(admin, query, `explained_members_${++n}`)).entries()) {
      const what = i === 0 ? label : `${label} (generic plan)`;
      t.comment(`${what}: ${outline(plan)}`);
      const scans = seqScans(plan, watched);
      t.same(scans, [], `${what}: no Seq Scan on ${[...watched].join('/')}`, { sql: query.sql.replace(/\s+/g, ' ').slice(0, 400) });
    }
  }
}

/**
 * A fresh, migrated PostgreSQL database whose statements are recorded, and an admin
 * connection to fill it fast (no commit waits, no foreign-key triggers), all closed with `t`.
 */
export async function explainDatabase(t: Test, label: string): Promise<{ database: DatabaseHandle; queries: RecordedQuery[]; admin: postgres.Sql }> {
  const url = await freshPostgresDatabase(t, label);
  const { database, queries } = recordingPostgres(url);
  t.teardown(() => database.close());
  await database.migrate();
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  t.teardown(() => admin.end({ timeout: 5 }));
  await admin.unsafe(`set synchronous_commit = off`);
  await admin.unsafe(`set session_replication_role = replica`);
  return { database, queries, admin };
}
