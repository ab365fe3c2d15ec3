import { sql } from 'drizzle-orm';
import t from 'tap';
import { isoFrom, isoTime } from '../src/db/sql.js';
import { testDatabase } from './helpers/app.js';

t.test('isoFrom formats PostgreSQL UTC text and Dates as API.md timestamps', async (t) => {
  t.equal(isoFrom('2026-11-21 12:00:00.123456+00'), '2026-11-21T12:00:00.123Z');
  t.equal(isoFrom('2026-11-21 12:00:00+00'), '2026-11-21T12:00:00.000Z', 'no fraction');
  t.equal(isoFrom('2026-11-21 12:00:00.1+00'), '2026-11-21T12:00:00.100Z', 'short fraction padded');
  t.equal(isoFrom('2026-11-21 13:00:00.5+01'), '2026-11-21T12:00:00.500Z', 'another offset is converted');
  t.equal(isoFrom(new Date(Date.UTC(2024, 0, 1, 12))), '2024-01-01T12:00:00.000Z');
});

// Both ways of formatting must agree to the millisecond, or one message would show two times.
for (const kind of ['postgres', 'pglite'] as const) {
  t.test(`isoFrom agrees with the database's own formatting (${kind})`, async (t) => {
    const { database } = await testDatabase(t, kind);
    const rows = await database.query<{ raw: unknown; formatted: string }>(sql`
      select ts as raw, ${isoTime(sql`ts`)} as formatted
        from (select now() - (random() * interval '3000 days') as ts from generate_series(1, 500)
              union all select timestamptz '2024-01-01 00:00:00.9999+00'
              union all select timestamptz '2024-01-01 00:00:00+00') s`);
    const mismatches = rows.filter((row) => isoFrom(row.raw) !== row.formatted);
    t.same(mismatches.slice(0, 3), [], `all ${rows.length} agree`);
  });
}
