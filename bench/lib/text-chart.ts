/** Plain-text rendering for stderr: an aligned table and a one-line sparkline. */

const LEVELS = '▁▂▃▄▅▆▇█';

/**
 * One character per value, from 0 (lowest bar) to the largest value (highest bar), so the
 * bars compare magnitudes rather than magnify noise around the minimum. null is a space.
 */
export function sparkline(values: readonly (number | null)[]): string {
  const known = values.filter((v): v is number => v !== null && Number.isFinite(v));
  const max = Math.max(0, ...known);
  return values
    .map((v) => {
      if (v === null || !Number.isFinite(v)) return ' ';
      const level = max > 0 ? Math.floor((Math.max(0, v) / max) * LEVELS.length) : 0;
      return LEVELS[Math.min(LEVELS.length - 1, level)];
    })
    .join('');
}

/** Columns right-aligned to their widest cell, two spaces apart, no trailing spaces. */
export function alignTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((row) => (row[c] ?? '').length)));
  return all.map((row) => widths.map((width, c) => (row[c] ?? '').padStart(width)).join('  ')).join('\n');
}
