/**
 * The comparison view: two or more runs side by side in the main area — the runs (status, engine,
 * duration; a run of another notebook flagged), parameters (changed ones highlighted), which steps
 * re-ran and why, metrics with deltas from the first run (better or worse by the metric's direction).
 * Every column sorts; the tables export as CSV.
 *
 * The model is computed on the server (kernels/compare.py, the one `nbscale diff` prints); this
 * module turns it into tables (`comparisonTables`, pure), renders them, and writes CSV (`toCsv`).
 * compareMainArea.ts fetches the model and opens the view in the main area.
 */
import { Widget } from '@lumino/widgets';

import { downloadText, h, replace } from './dom';
import { driftTable, IDriftModel } from './driftTable';
import { formatDuration, formatNumber, formatTime, statusLabel } from './format';
import { runLabel } from './metrics';
import { formatValue } from './metricsSection';
import { IComparison } from './wire';

/** One cell: what is shown, what CSV gets (numbers stay numbers), and how it sorts. */
export interface ICell {
  text: string;
  value: string | number | null;
  sort: string | number | null;
  className?: string;
  title?: string;
}

export interface ICompareTable {
  id: 'runs' | 'parameters' | 'steps' | 'metrics' | 'drift';
  title: string;
  columns: string[];
  rows: ICell[][];
  /** A class per row (changed parameter, re-run step, changed metric). */
  rowClasses: string[];
}

function cell(text: string, value: string | number | null = text, sort: string | number | null = value, extra: Partial<ICell> = {}): ICell {
  return { text, value, sort, ...extra };
}

function num(value: number | null, text = value === null ? '–' : formatNumber(value)): ICell {
  return cell(text, value, value);
}

/** Column headers of the runs: `#1 0123abcd` (the first is the reference). */
export function runHeaders(model: IComparison): string[] {
  return model.runs.map((r, i) => `#${i + 1} ${runLabel(r.run_id)}`);
}

export function comparisonTables(model: IComparison): ICompareTable[] {
  const drift = driftTable(model as IComparison & IDriftModel); // data drift: only when runs handed on frames
  return [runsTable(model), parametersTable(model), stepsTable(model), metricsTable(model), ...(drift ? [drift] : [])];
}

function runsTable(model: IComparison): ICompareTable {
  const heads = runHeaders(model);
  return {
    id: 'runs',
    title: 'Runs',
    columns: ['run', 'id', 'notebook', 'status', 'engine', 'created', 'duration (s)'],
    rows: model.runs.map((r, i) => [
      cell(i === 0 ? `${heads[i]} (reference)` : heads[i], heads[i], i),
      cell(r.run_id),
      cell(r.other_notebook ? `${r.notebook} (another notebook)` : r.notebook, r.notebook, r.notebook, {
        className: r.other_notebook ? 'nbscale-other-notebook' : undefined,
        title: r.other_notebook ? `This run is of ${r.notebook}, not of ${model.notebook}` : undefined
      }),
      cell(statusLabel(r.status), r.status, r.status, { className: `nbscale-status-text nbscale-status-${r.status}` }),
      cell(r.engine ?? ''),
      cell(formatTime(r.created), r.created, r.created),
      num(r.duration_s, r.duration_s === null ? 'not finished' : formatDuration(r.duration_s))
    ]),
    rowClasses: model.runs.map(r => (r.other_notebook ? 'nbscale-other-notebook' : ''))
  };
}

function parametersTable(model: IComparison): ICompareTable {
  return {
    id: 'parameters',
    title: 'Parameters',
    columns: ['parameter', ...runHeaders(model)],
    rows: model.parameters.map(p => [
      cell(p.name, p.name, p.name, { title: p.changed ? 'differs between the runs' : undefined }),
      ...p.values.map((v, i) => {
        const text = p.set[i] ? formatValue(v) : '(not set)';
        const differs = i > 0 && (p.set[i] !== p.set[0] || JSON.stringify(v) !== JSON.stringify(p.values[0]));
        const value = !p.set[i] ? null : typeof v === 'number' || typeof v === 'string' ? v : JSON.stringify(v);
        return cell(text, value, typeof v === 'number' ? v : text, { className: differs ? 'nbscale-changed-value' : undefined });
      })
    ]),
    rowClasses: model.parameters.map(p => (p.changed ? 'nbscale-changed' : ''))
  };
}

function stepsTable(model: IComparison): ICompareTable {
  const heads = runHeaders(model);
  return {
    id: 'steps',
    title: 'Steps',
    columns: ['step', ...heads.map(head => `${head} status`), ...heads.map(head => `${head} (s)`), ...heads.slice(1).map(head => `${head}: why`)],
    rows: model.steps.map(step => [
      cell(step.name),
      ...step.runs.map(r => (r ? cell(statusLabel(r.status), r.status, r.status, { className: `nbscale-status-text nbscale-status-${r.status}`, title: r.why }) : cell('–', null, null))),
      ...step.runs.map(r => num(r?.duration_s ?? null, r?.duration_s == null ? '–' : formatDuration(r.duration_s))),
      ...step.runs.slice(1).map(r => cell(r ? r.why : 'not in this run', r ? r.why : null, r ? r.why : null, { className: 'nbscale-why' }))
    ]),
    rowClasses: model.steps.map(s => (s.reran ? 'nbscale-reran' : ''))
  };
}

function metricsTable(model: IComparison): ICompareTable {
  const heads = runHeaders(model);
  return {
    id: 'metrics',
    title: 'Metrics',
    columns: ['metric', 'better', ...heads, ...heads.slice(1).map(head => `Δ ${head}`)],
    rows: model.metrics.map(m => [
      cell(m.name),
      cell(m.direction === 'min' ? 'lower' : 'higher', m.direction, m.direction),
      ...m.values.map(v => num(v)),
      ...m.deltas.slice(1).map((d, k) => {
        const i = k + 1;
        const better = m.better[i];
        const relative = m.relative[i];
        const text = d === null ? '–' : `${d > 0 ? '+' : ''}${formatNumber(d)}${relative !== null && d !== 0 ? ` (${relative > 0 ? '+' : ''}${(relative * 100).toFixed(1)}%)` : ''}`;
        return cell(text, d, d, {
          className: better === true ? 'nbscale-better' : better === false ? 'nbscale-worse' : undefined,
          title: better === true ? 'better than the reference run' : better === false ? 'worse than the reference run' : undefined
        });
      })
    ]),
    rowClasses: model.metrics.map(m => (m.changed ? 'nbscale-changed' : ''))
  };
}

/** Rows sorted by a column (numbers as numbers, text as text, empty cells last); stable. */
export function sortRows(rows: ICell[][], column: number, descending = false): ICell[][] {
  const indexed = rows.map((row, index) => ({ row, index }));
  indexed.sort((a, b) => {
    const x = a.row[column]?.sort ?? null;
    const y = b.row[column]?.sort ?? null;
    if (x === null || y === null) {
      return x === y ? a.index - b.index : x === null ? 1 : -1;
    }
    const order = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
    return (descending ? -order : order) || a.index - b.index;
  });
  return indexed.map(i => i.row);
}

/**
 * One CSV field (RFC 4180): quoted when it holds a comma, quote or line break, or starts or ends
 * with a space. Text starting with = + - @ (or a tab or carriage return) gets a leading
 * apostrophe, so a spreadsheet never runs it as a formula; numbers are written as numbers.
 */
export function csvCell(value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (typeof value === 'number') {
    return isFinite(value) ? String(value) : '';
  }
  let text = typeof value === 'string' ? value : JSON.stringify(value);
  if (/^[=+\-@\t\r]/.test(text)) {
    text = `'${text}`;
  }
  if (/[",\r\n]/.test(text) || text !== text.trim()) {
    text = `"${text.replace(/"/g, '""')}"`;
  }
  return text;
}

/** The tables as one CSV text: each table's title, header and rows, a blank line between. */
export function toCsv(tables: ICompareTable[]): string {
  const lines: string[] = [];
  for (const table of tables) {
    if (lines.length) {
      lines.push('');
    }
    lines.push(csvCell(table.title));
    lines.push(table.columns.map(csvCell).join(','));
    for (const row of table.rows) {
      lines.push(row.map(c => csvCell(c.value)).join(','));
    }
  }
  return lines.join('\r\n') + '\r\n';
}

export function csvFileName(model: IComparison): string {
  return `nbscale-compare-${model.runs.map(r => runLabel(r.run_id)).join('-')}.csv`;
}

/** The view's content: the comparison's tables, sortable, with a CSV export. */
export class CompareView extends Widget {
  private _model: IComparison | null = null;
  private readonly _sort = new Map<string, { column: number; descending: boolean }>();

  constructor(readonly runIds: string[]) {
    super();
    this.addClass('nbscale-compare');
    this.node.tabIndex = -1;
    replace(this.node, h('p', { className: 'nbscale-muted' }, `Comparing ${runIds.length} runs…`));
  }

  get model(): IComparison | null {
    return this._model;
  }

  setModel(model: IComparison): void {
    this._model = model;
    this._render();
  }

  setError(message: string): void {
    replace(this.node, h('p', { className: 'nbscale-error', role: 'alert' }, `Could not compare the runs: ${message}`));
  }

  /** Sort a table by a column (again: the other way). */
  sortBy(table: ICompareTable['id'], column: number): void {
    const now = this._sort.get(table);
    this._sort.set(table, { column, descending: now?.column === column ? !now.descending : false });
    this._render();
  }

  exportCsv(): void {
    if (this._model) {
      downloadText(toCsv(comparisonTables(this._model)), csvFileName(this._model), 'text/csv');
    }
  }

  private _render(): void {
    const model = this._model;
    if (!model) {
      return;
    }
    const others = model.runs.filter(r => r.other_notebook);
    const exportButton = h('button', { className: 'jp-Button jp-mod-styled jp-mod-accept nbscale-export-csv', type: 'button' }, 'Export CSV');
    exportButton.addEventListener('click', () => this.exportCsv());
    replace(
      this.node,
      h(
        'div',
        { className: 'nbscale-compare-header' },
        h('h2', {}, `${model.runs.length} runs of ${model.notebook}`),
        h('span', { className: 'nbscale-muted' }, 'Changes and deltas are against the first run (#1). Click a column to sort.'),
        exportButton
      ),
      others.length
        ? h('p', { className: 'nbscale-warning', role: 'note' }, `${others.length === 1 ? 'One run is' : `${others.length} runs are`} of another notebook: ${others.map(r => r.notebook).join(', ')}.`)
        : null,
      ...comparisonTables(model).map(table => this._table(table))
    );
  }

  private _table(table: ICompareTable): HTMLElement {
    const sort = this._sort.get(table.id);
    const order = table.rows.map((row, i) => ({ row, cls: table.rowClasses[i] }));
    const sorted = sort ? sortRows(table.rows, sort.column, sort.descending) : table.rows;
    const classOf = new Map(order.map(o => [o.row, o.cls]));
    const head = h(
      'tr',
      {},
      ...table.columns.map((name, i) => {
        const active = sort?.column === i;
        const th = h(
          'th',
          { scope: 'col', 'aria-sort': active ? (sort!.descending ? 'descending' : 'ascending') : 'none' },
          h('button', { className: 'nbscale-sort', type: 'button', title: `Sort by ${name}` }, name, active ? (sort!.descending ? ' ▼' : ' ▲') : '')
        );
        th.querySelector('button')!.addEventListener('click', () => this.sortBy(table.id, i));
        return th;
      })
    );
    const body = h('tbody');
    for (const row of sorted) {
      body.appendChild(
        h(
          'tr',
          { className: classOf.get(row) ?? '' },
          ...row.map(c => h('td', { className: c.className ?? '', title: c.title ?? null }, c.text))
        )
      );
    }
    const empty = table.rows.length ? null : h('p', { className: 'nbscale-muted' }, `No ${table.title.toLowerCase()}.`);
    return h(
      'section',
      { className: `nbscale-compare-section nbscale-compare-${table.id}`, 'aria-label': table.title },
      h('h3', {}, table.title),
      empty ?? h('div', { className: 'nbscale-table-scroll' }, h('table', { className: 'nbscale-table nbscale-compare-table', 'data-table': table.id }, h('thead', {}, head), body))
    );
  }
}
