/**
 * Metrics: the shown run's metrics, and each metric across the notebook's runs as a table (runs as
 * rows; the parameters that differ between runs and the metrics as columns, which a column picker
 * shows or hides, the table scrolling sideways) and a line chart labelled by run, the best run
 * marked. Whether higher or lower is better comes from the server (compiler/metric_direction.py).
 */
import { renderLineChart } from './chart';
import { h, replace } from './dom';
import { formatNumber, formatShortTime, formatTime, statusLabel } from './format';
import { ILineageSource, LineageApi, LineagePane } from './lineageView';
import { bestRuns, metricDirection, metricSeries, runLabel, varyingParameters } from './metrics';
import { regressedRow, regressionOf, renderRegressions } from './runInsights';
import { Section } from './section';
import { PanelState, Part } from './state';
import { IMetricsHistory, isFinished } from './wire';

/** A column of the across-runs table: a parameter or a metric. */
export interface IMetricsColumn {
  key: string;
  kind: 'parameter' | 'metric';
  name: string;
}

export class MetricsSection extends Section {
  private _metric: string | null = null;
  private readonly _hidden = new Set<string>();
  private readonly _current: HTMLElement;
  private readonly _history: HTMLElement;
  /** Where lineage comes from (the server's API unless a test sets another). */
  lineageSource: ILineageSource | null = null;
  private readonly _lineage = new LineagePane(() => (this.lineageSource ??= new LineageApi()));
  static readonly MAX_ROWS = 20;

  constructor(state: PanelState) {
    super(state, 'Metrics', ['metrics', 'run', 'settings', 'runs']);
    this._current = h('div', { className: 'nbscale-metrics-current' });
    this._history = h('div', { className: 'nbscale-metrics-history' });
    this.body.append(this._current, this._lineage.node, this._history);
    this.refresh();
  }

  get selectedMetric(): string | null {
    return this._metric;
  }

  selectMetric(name: string): void {
    this._metric = name;
    this._renderHistory();
  }

  /** Show what produced a metric of the shown run: its steps, files and versions (lineageView.ts). */
  showLineage(name: string): Promise<void> {
    const run = this.state.run;
    return run && this.state.path ? this._lineage.show(this.state.path, run.run_id, name) : Promise.resolve();
  }

  /** Every column the table can show (parameters that differ between runs, then metrics). */
  columns(): IMetricsColumn[] {
    const history = this.state.history;
    if (!history) {
      return [];
    }
    const params = varyingParameters(this._parameterRuns(history));
    return [
      ...params.map(name => ({ key: `parameter:${name}`, kind: 'parameter' as const, name })),
      ...history.names.map(name => ({ key: `metric:${name}`, kind: 'metric' as const, name }))
    ];
  }

  /** Show or hide a column of the across-runs table. */
  setColumnShown(key: string, shown: boolean): void {
    if (shown) {
      this._hidden.delete(key);
    } else {
      this._hidden.add(key);
    }
    this._renderHistory();
  }

  protected render(part: Part): void {
    this._renderCurrent();
    if (part !== 'run') {
      this._renderHistory();
    }
  }

  private _directions(): Record<string, string> {
    return this.state.history?.directions ?? {};
  }

  private _renderCurrent(): void {
    const run = this.state.run;
    const metrics = run?.metrics ?? {};
    const names = Object.keys(metrics);
    if (!this.state.path) {
      replace(this._current, h('p', { className: 'nbscale-empty' }, 'Open a notebook to see its metrics.'));
      this.setExtra('');
      return;
    }
    if (!run || !names.length) {
      const expected = this.state.pipeline?.metrics?.names ?? [];
      replace(
        this._current,
        h(
          'p',
          { className: 'nbscale-muted' },
          !expected.length
            ? 'No metrics: tag a cell "metrics".'
            : run && isFinished(run.status)
              ? `This run recorded no metrics (${statusLabel(run.status)}).`
              : `No metrics yet (${expected.join(', ')} when the run finishes).`
        )
      );
      this.setExtra('');
      return;
    }
    const best = this.state.history ? bestRuns(this.state.history, this.state.settings.metricDirections) : {};
    const table = h(
      'table',
      { className: 'nbscale-table nbscale-metrics-run', 'data-run': run.run_id },
      h('caption', {}, `This run (${formatTime(run.created)})`)
    );
    const tbody = h('tbody');
    for (const name of names) {
      const isBest = best[name] === run.run_id;
      tbody.appendChild(
        h(
          'tr',
          { 'data-metric': name, ...regressedRow(run, name) },
          h('th', { scope: 'row' }, name, regressionOf(run, name) ? ' ▼' : ''),
          h('td', { className: `nbscale-num${isBest ? ' nbscale-best' : ''}`, title: isBest ? 'best of all runs' : '' }, formatNumber(metrics[name]), isBest ? ' ★' : ''),
          h('td', {}, this._lineageButton(name))
        )
      );
    }
    table.appendChild(tbody);
    replace(this._current, table, renderRegressions(run));
    this.setExtra(`${names.length} metric${names.length === 1 ? '' : 's'}`);
  }

  /** The runs of the history with their parameters (from the run list, joined by run id). */
  private _parameterRuns(history: IMetricsHistory): { run_id: string; parameters: Record<string, unknown> }[] {
    const byId = new Map((this.state.runs ?? []).map(r => [r.run_id, r.parameters ?? {}]));
    return history.runs.map(r => ({ run_id: r.run_id, parameters: byId.get(r.run_id) ?? {} }));
  }

  private _renderHistory(): void {
    const history = this.state.history;
    if (!this.state.path || !history) {
      replace(this._history, this.state.metricsError ? h('p', { className: 'nbscale-error' }, this.state.metricsError) : null);
      return;
    }
    // newest first (the server lists the history oldest first)
    const runs = history.runs
      .filter(r => Object.keys(r.metrics ?? {}).length)
      .sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0));
    if (!history.names.length || !runs.length) {
      replace(this._history, h('p', { className: 'nbscale-muted' }, 'No metrics across runs yet.'));
      return;
    }
    if (!this._metric || !history.names.includes(this._metric)) {
      this._metric = history.names[0];
    }
    const overrides = this.state.settings.metricDirections;
    const best = bestRuns(history, overrides);
    const metric = this._metric;
    const direction = metricDirection(metric, this._directions(), overrides);

    const select = h('select', { className: 'nbscale-metric-select', 'aria-label': 'Metric to chart' });
    for (const name of history.names) {
      const option = h('option', { value: name }, name);
      option.selected = name === metric;
      select.appendChild(option);
    }
    select.addEventListener('change', () => this.selectMetric(select.value));

    const chart = renderLineChart(metricSeries(history, metric), { best: best[metric], title: `${metric} across runs, by run` });
    const all = this.columns();
    const shown = all.filter(c => !this._hidden.has(c.key));
    const params = new Map(this._parameterRuns(history).map(r => [r.run_id, r.parameters]));

    const table = h('table', { className: 'nbscale-table nbscale-metrics-table' });
    table.appendChild(
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', {}, 'run'),
          ...shown.map(c =>
            h(
              'th',
              { className: c.kind === 'metric' ? 'nbscale-num' : 'nbscale-param-col', 'data-column': c.key, title: c.kind === 'parameter' ? `parameter ${c.name}` : `metric ${c.name}` },
              c.name
            )
          )
        )
      )
    );
    const tbody = h('tbody');
    for (const r of runs.slice(0, MetricsSection.MAX_ROWS)) {
      const current = this.state.run?.run_id === r.run_id;
      const row = h(
        'tr',
        { 'data-run': r.run_id, className: current ? 'nbscale-current-run' : '', title: 'Show this run', tabindex: 0 },
        h(
          'td',
          { className: 'nbscale-nowrap', title: `run ${r.run_id} · ${formatTime(r.created)} · ${statusLabel(r.status)}` },
          h('span', { className: `nbscale-dot nbscale-status-${r.status}` }),
          ' ',
          h('span', { className: 'nbscale-run-label' }, runLabel(r.run_id)),
          ' ',
          h('span', { className: 'nbscale-muted' }, formatShortTime(r.created))
        ),
        ...shown.map(c => {
          if (c.kind === 'parameter') {
            const values = params.get(r.run_id) ?? {};
            return h('td', { className: 'nbscale-param-col' }, c.name in values ? formatValue(values[c.name]) : '–');
          }
          const isBest = best[c.name] === r.run_id;
          return h(
            'td',
            { className: `nbscale-num${isBest ? ' nbscale-best' : ''}`, title: isBest ? 'best run' : '' },
            c.name in (r.metrics ?? {}) ? formatNumber(r.metrics[c.name]) : '–',
            isBest ? ' ★' : ''
          );
        })
      );
      const show = () => void this.state.showRun(r.run_id).catch(err => this.notice(String(err), 'error'));
      row.addEventListener('click', show);
      row.addEventListener('keydown', e => {
        if (e.key === 'Enter') {
          show();
        }
      });
      tbody.appendChild(row);
    }
    table.appendChild(tbody);
    replace(
      this._history,
      h(
        'div',
        { className: 'nbscale-row' },
        h('span', { className: 'nbscale-subtitle' }, 'Across runs'),
        select,
        h('span', { className: 'nbscale-muted', title: 'How the best run is chosen (metadata.nbscale.metrics declares it)' }, direction === 'max' ? 'higher is better' : 'lower is better')
      ),
      h('div', { className: 'nbscale-chart-container' }, chart),
      this._columnPicker(all, shown.length),
      h('div', { className: 'nbscale-table-scroll', tabindex: 0, 'aria-label': 'Metrics of each run (scrolls sideways)' }, table)
    );
  }

  private _lineageButton(name: string): HTMLElement {
    const button = h('button', { className: 'nbscale-button nbscale-lineage-button', title: `What produced ${name}: steps, files read, package versions` }, 'Lineage');
    button.addEventListener('click', () => void this.showLineage(name));
    return button;
  }

  private _columnPicker(all: IMetricsColumn[], shown: number): HTMLElement {
    const picker = h(
      'details',
      { className: 'nbscale-column-picker' },
      h('summary', {}, `Columns (${shown} of ${all.length})`)
    );
    for (const c of all) {
      const box = h('input', { type: 'checkbox', 'data-column': c.key }) as HTMLInputElement;
      box.checked = !this._hidden.has(c.key);
      box.addEventListener('change', () => {
        this.setColumnShown(c.key, box.checked);
        const again = this._history.querySelector<HTMLDetailsElement>('.nbscale-column-picker');
        if (again) {
          again.open = true; // keep the picker open while choosing
        }
      });
      picker.appendChild(h('label', { className: 'nbscale-column-choice' }, box, ` ${c.kind === 'parameter' ? '⚙ ' : ''}${c.name}`));
    }
    return picker;
  }
}

/** A parameter value as a table shows it: numbers as numbers, text as itself, others as JSON. */
export function formatValue(value: unknown): string {
  if (typeof value === 'number') {
    return formatNumber(value);
  }
  if (typeof value === 'string') {
    return value;
  }
  return JSON.stringify(value) ?? String(value);
}
