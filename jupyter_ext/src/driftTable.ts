/**
 * The comparison view's data drift table: per later run, step output and column, whether its data
 * drifted from the reference run's (#1), with the test, score, p-value, threshold and PSI.
 *
 * The rows are the comparison model's `drift` section (kernels/drift.py `comparison_drift`, the
 * one `nbscale diff` prints); this module only turns them into a table of the view (pure), so
 * sorting, rendering (text only) and CSV export are the view's.
 */
import type { ICell, ICompareTable } from './compareView';
import { formatNumber } from './format';
import { runLabel } from './metrics';

/** One row of the model's `drift` section. `status`: drifted, ok, missing, new or type changed. */
export interface IDriftRow {
  run: number;
  run_id: string;
  step: string;
  value: string;
  column: string;
  status: 'drifted' | 'ok' | 'missing' | 'new' | 'type changed' | string;
  test?: string | null;
  score?: number | null;
  p_value?: number | null;
  threshold?: number | null;
  psi?: number | null;
  note?: string | null;
}

/** The part of the comparison model this table reads. */
export interface IDriftModel {
  drift?: IDriftRow[] | null;
}

const STATUS_TITLES: Record<string, string> = {
  drifted: 'the test is over its threshold: the data differs from the reference run',
  ok: 'within the threshold',
  missing: 'the column is in the reference run only',
  new: 'the column is not in the reference run',
  'type changed': 'the column has another type than in the reference run'
};

function cell(text: string, value: string | number | null = text, extra: Partial<ICell> = {}): ICell {
  return { text, value, sort: value, ...extra };
}

function num(value: number | null | undefined): ICell {
  const known = typeof value === 'number' && isFinite(value) ? value : null;
  return cell(known === null ? '–' : formatNumber(known), known);
}

/** The drift table, or null when the model has no drift rows (no run handed on frames or arrays). */
export function driftTable(model: IDriftModel): ICompareTable | null {
  const rows = Array.isArray(model.drift) ? model.drift : [];
  if (!rows.length) {
    return null;
  }
  const drifted = rows.filter(r => r.status === 'drifted').length;
  const compared = rows.filter(r => r.status === 'drifted' || r.status === 'ok').length;
  return {
    id: 'drift',
    title: `Data drift (${drifted} of ${compared} column${compared === 1 ? '' : 's'} drifted)`,
    columns: ['run', 'value', 'column', 'status', 'test', 'score', 'p-value', 'threshold', 'PSI', 'note'],
    rows: rows.map(r => [
      cell(`#${r.run} ${runLabel(String(r.run_id))}`, `#${r.run}`),
      cell(`${r.step}.${r.value}`),
      cell(String(r.column)),
      cell(r.status, r.status, {
        className: r.status === 'drifted' ? 'nbscale-worse' : r.status === 'ok' ? undefined : 'nbscale-changed-value',
        title: STATUS_TITLES[r.status]
      }),
      cell(r.test ?? '–', r.test ?? null),
      num(r.score),
      num(r.p_value),
      num(r.threshold),
      num(r.psi),
      cell(r.note ?? '', r.note ?? null)
    ]),
    rowClasses: rows.map(r => (r.status === 'drifted' ? 'nbscale-drifted' : ''))
  };
}
