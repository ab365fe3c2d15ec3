import type { SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import type { DatabaseHandle, Prepared, Query } from '../db/client.js';
import type { StatementName, StatementSpan } from '../domain/observer.js';
import type { Otel } from './sdk.js';

/**
 * The handle with a client span per statement (`query`, `prepare`, and each statement of a
 * transaction) and one per transaction. A statement the code names (`timeStatement`: send_batch,
 * history_page, …) is named so; others by their SQL operation. The text carries parameters, never values.
 */
export function tracedDatabase(handle: DatabaseHandle, otel: Otel, names: StatementNames): DatabaseHandle {
  const { api } = otel;
  const dialect = new PgDialect();
  // Statements kept in constants are compiled once here too.
  const texts = new WeakMap<SQL, string>();
  const textOf = (statement: SQL): string => {
    let text = texts.get(statement);
    if (text === undefined) texts.set(statement, (text = dialect.sqlToQuery(statement).sql));
    return text;
  };
  const statement = <R>(text: string, run: () => Promise<R>): Promise<R> => {
    const operation = /^\s*(\w+)/.exec(text)?.[1]?.toUpperCase() ?? 'SQL';
    const name = names.current();
    return otel.inSpan(
      name ?? operation,
      {
        kind: api.SpanKind.CLIENT,
        attributes: {
          'db.system.name': 'postgresql',
          'db.operation.name': operation,
          'db.query.text': text,
          ...(name ? { 'db.query.summary': name } : {}),
        },
      },
      run,
    );
  };
  return {
    ...handle,
    query: (sql, options) => statement(textOf(sql), () => handle.query(sql, options)),
    prepare: <T extends Record<string, unknown>>(sql: SQL, options?: Parameters<DatabaseHandle['prepare']>[1]): Prepared<T> => {
      const prepared = handle.prepare<T>(sql, options);
      const text = textOf(sql);
      return (values) => statement(text, () => prepared(values));
    },
    transaction: (work) =>
      otel.inSpan('transaction', { kind: api.SpanKind.CLIENT, attributes: { 'db.system.name': 'postgresql' } }, () =>
        handle.transaction(
          // The driver calls back from its connection's context: the transaction's statements
          // are put back under the transaction span explicitly.
          api.context.bind(api.context.active(), (query: Query) => work((sql) => statement(textOf(sql), () => query(sql)))),
        ),
      ),
  };
}

/** The name of the statement running in the active context, set by `timeStatement` through `statementSpan`. */
export interface StatementNames {
  readonly statementSpan: StatementSpan;
  current(): StatementName | undefined;
}

export function statementNames(otel: Otel): StatementNames {
  const { api } = otel;
  const key = api.createContextKey('chat.statement');
  return {
    statementSpan: (name, run) => api.context.with(api.context.active().setValue(key, name), run),
    current: () => api.context.active().getValue(key) as StatementName | undefined,
  };
}
