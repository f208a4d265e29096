/**
 * The detail of one step of a run (GET /nbscale/api/runs/RUN/steps/STEP): status, duration,
 * attempts, cached or why it re-ran, inputs and outputs with their sizes, the traceback, and what
 * each of its cells showed as a kernel shows it — streams, text results, Python warnings and
 * figures. Everything is text (dom.ts `h()`); figures are `<img>` of the server's files endpoint,
 * which serves only the images the step's cells showed.
 */
import { h } from './dom';
import { cellLabel, cellNumber, formatBytes, formatDuration, hasTraceback, statusLabel, tracebackText } from './format';
import { ICellOutput, ICellRecord, ICellWarning, IStepDetail } from './wire';

/** Where step details come from (stepDetailApi.ts over HTTP; fakes in tests). */
export interface IStepDetailSource {
  stepDetail(path: string, runId: string, step: string): Promise<IStepDetail>;
  /** The URL of an image a step's cell showed (`file` as the detail names it). */
  imageUrl(path: string, runId: string, step: string, file: string): string;
}

export interface IStepDetailOptions {
  /** The URL of one of the step's images. */
  imageUrl: (file: string) => string;
  /** Select a cell of the notebook (0-based index). */
  onCell?: (index: number) => void;
}

function facts(detail: IStepDetail): HTMLElement {
  const rows: [string, string][] = [
    ['Status', statusLabel(detail.status)],
    ['Duration', formatDuration(detail.duration_s)],
    ['Attempts', String(detail.attempts ?? 0)]
  ];
  if (detail.cached) {
    rows.push(['Result', 'reused from the cache']);
  } else if (detail.stale?.length) {
    rows.push(['Re-ran because', detail.stale.join('; ')]);
  }
  return h(
    'dl',
    { className: 'nbscale-step-facts' },
    ...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', { 'data-fact': k.toLowerCase() }, v)])
  );
}

function valuesTable(detail: IStepDetail): HTMLElement | null {
  if (!detail.inputs.length && !detail.outputs.length) {
    return null;
  }
  const row = (kind: string, name: string, where: string, bytes: number | null) =>
    h(
      'tr',
      { 'data-kind': kind, 'data-name': name },
      h('td', {}, kind),
      h('td', { className: 'nbscale-mono' }, name),
      h('td', {}, where),
      h('td', { className: 'nbscale-num' }, bytes === null || bytes === undefined ? '—' : formatBytes(bytes))
    );
  return h(
    'table',
    { className: 'nbscale-step-values', 'aria-label': 'Inputs and outputs' },
    h('thead', {}, h('tr', {}, h('th', {}, ''), h('th', {}, 'Name'), h('th', {}, 'From'), h('th', {}, 'Size'))),
    h(
      'tbody',
      {},
      ...detail.inputs.map(i => row('in', i.name, i.from ?? 'parameter', i.bytes)),
      ...detail.outputs.map(o => row('out', o.name, '', o.bytes))
    )
  );
}

function errorBlock(detail: IStepDetail, options: IStepDetailOptions): HTMLElement | null {
  const error = detail.error;
  if (!error) {
    return null;
  }
  const where = error.cell === null || error.cell === undefined ? '' : ` (${cellLabel(error.cell, error.line)})`;
  const title = h('div', { className: 'nbscale-error' }, `${error.ename ? `${error.ename}: ` : ''}${error.evalue}${where}`);
  if (error.cell !== null && error.cell !== undefined && options.onCell) {
    const cell = error.cell;
    title.classList.add('nbscale-clickable');
    title.addEventListener('click', () => options.onCell!(cell));
  }
  return h(
    'div',
    { className: 'nbscale-step-error' },
    title,
    hasTraceback(error) ? h('pre', { className: 'nbscale-traceback' }, tracebackText(error)) : null
  );
}

function outputNode(output: ICellOutput, options: IStepDetailOptions): HTMLElement {
  switch (output.type) {
    case 'stream':
      return h('pre', { className: `nbscale-output nbscale-output-${output.name}`, 'data-output': 'stream' }, output.text);
    case 'text':
      return h('pre', { className: 'nbscale-output nbscale-output-result', 'data-output': 'text' }, output.text);
    case 'image':
      return h(
        'div',
        { className: 'nbscale-output nbscale-output-image', 'data-output': 'image' },
        h('img', { src: options.imageUrl(output.file), alt: `figure ${output.file}`, loading: 'lazy' })
      );
    case 'error':
      return h('pre', { className: 'nbscale-output nbscale-output-error', 'data-output': 'error' }, `${output.ename}: ${output.evalue}`);
    default:
      return h(
        'div',
        { className: 'nbscale-output nbscale-muted', 'data-output': 'other' },
        `[${((output as { mimes?: string[] }).mimes ?? []).join(', ')} output]`
      );
  }
}

/** Where a warning was raised: a notebook cell numbered as people read it, or a library's file:line. */
export function warningPlace(w: ICellWarning): string {
  return w.cell !== null && w.cell !== undefined && w.where.startsWith('cell ') ? cellLabel(w.cell, w.line) : w.where;
}

function cellBlock(record: ICellRecord, options: IStepDetailOptions): HTMLElement {
  const label = h('button', { className: 'nbscale-link-button nbscale-cell-label', title: 'Select this cell in the notebook' }, `Cell ${cellNumber(record.cell)}`);
  if (options.onCell) {
    label.addEventListener('click', () => options.onCell!(record.cell));
  }
  const warnings = (record.warnings ?? []).map(w =>
    h(
      'div',
      { className: 'nbscale-output nbscale-output-warning', 'data-output': 'warning', role: 'note' },
      h('strong', {}, `${w.category}: `),
      w.message,
      h('span', { className: 'nbscale-muted' }, ` (${warningPlace(w)})`)
    )
  );
  return h(
    'section',
    { className: 'nbscale-cell-outputs', 'data-cell': record.cell },
    h('div', { className: 'nbscale-cell-header' }, label),
    ...warnings,
    ...record.outputs.map(o => outputNode(o, options))
  );
}

function plainLogs(detail: IStepDetail): HTMLElement[] {
  // an engine that kept no per-cell outputs: what the run store has
  const out: HTMLElement[] = [];
  if (detail.stdout) {
    out.push(h('pre', { className: 'nbscale-output nbscale-output-stdout', 'data-output': 'stream' }, detail.stdout));
  }
  if (detail.stderr) {
    out.push(h('pre', { className: 'nbscale-output nbscale-output-stderr', 'data-output': 'stream' }, detail.stderr));
  }
  return out;
}

/** The detail of a step as one element. */
export function renderStepDetail(detail: IStepDetail, options: IStepDetailOptions): HTMLElement {
  const cells = detail.cells ?? [];
  const outputs = cells.length ? cells.map(c => cellBlock(c, options)) : plainLogs(detail);
  return h(
    'div',
    { className: `nbscale-step-detail nbscale-status-${detail.status}`, 'data-step': detail.name, 'data-status': detail.status },
    h('h3', { className: 'nbscale-step-detail-title' }, detail.name),
    facts(detail),
    errorBlock(detail, options),
    valuesTable(detail),
    h('h4', {}, 'Outputs'),
    outputs.length ? h('div', { className: 'nbscale-step-cells' }, ...outputs) : h('p', { className: 'nbscale-empty' }, 'The step showed nothing.')
  );
}
