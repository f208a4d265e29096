/**
 * Metrics: the shown run's metrics, and each metric across the notebook's runs as a table and
 * a line chart, the best run marked (higher is better unless the name says loss/error, or
 * the `metricDirections` setting says otherwise).
 */
import { renderLineChart } from './chart';
import { h, replace } from './dom';
import { formatNumber, formatShortTime, formatTime, statusLabel } from './format';
import { bestRuns, metricDirection, metricSeries } from './metrics';
import { Section } from './section';
import { PanelState, Part } from './state';
import { isFinished } from './wire';

export class MetricsSection extends Section {
  private _metric: string | null = null;
  private readonly _current: HTMLElement;
  private readonly _history: HTMLElement;
  static readonly MAX_ROWS = 20;

  constructor(state: PanelState) {
    super(state, 'Metrics', ['metrics', 'run', 'settings']);
    this._current = h('div', { className: 'nbscale-metrics-current' });
    this._history = h('div', { className: 'nbscale-metrics-history' });
    this.body.append(this._current, this._history);
    this.refresh();
  }

  get selectedMetric(): string | null {
    return this._metric;
  }

  selectMetric(name: string): void {
    this._metric = name;
    this._renderHistory();
  }

  protected render(part: Part): void {
    this._renderCurrent();
    if (part !== 'run') {
      this._renderHistory();
    }
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
          { 'data-metric': name },
          h('th', { scope: 'row' }, name),
          h('td', { className: `nbscale-num${isBest ? ' nbscale-best' : ''}`, title: isBest ? 'best of all runs' : '' }, formatNumber(metrics[name]), isBest ? ' ★' : '')
        )
      );
    }
    table.appendChild(tbody);
    replace(this._current, table);
    this.setExtra(`${names.length} metric${names.length === 1 ? '' : 's'}`);
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
    const direction = metricDirection(metric, overrides);

    const select = h('select', { className: 'nbscale-metric-select', 'aria-label': 'Metric to chart' });
    for (const name of history.names) {
      const option = h('option', { value: name }, name);
      option.selected = name === metric;
      select.appendChild(option);
    }
    select.addEventListener('change', () => this.selectMetric(select.value));

    const chart = renderLineChart(metricSeries(history, metric), { best: best[metric], title: `${metric} across runs` });

    const table = h('table', { className: 'nbscale-table nbscale-metrics-table' });
    table.appendChild(
      h('thead', {}, h('tr', {}, h('th', {}, 'run'), ...history.names.map(n => h('th', { className: 'nbscale-num' }, n))))
    );
    const tbody = h('tbody');
    for (const r of runs.slice(0, MetricsSection.MAX_ROWS)) {
      const current = this.state.run?.run_id === r.run_id;
      const row = h(
        'tr',
        { 'data-run': r.run_id, className: current ? 'nbscale-current-run' : '', title: 'Show this run', tabindex: 0 },
        h(
          'td',
          { className: 'nbscale-nowrap', title: `${formatTime(r.created)} · ${statusLabel(r.status)}` },
          h('span', { className: `nbscale-dot nbscale-status-${r.status}` }),
          ' ',
          formatShortTime(r.created)
        ),
        ...history.names.map(n => {
          const isBest = best[n] === r.run_id;
          return h(
            'td',
            { className: `nbscale-num${isBest ? ' nbscale-best' : ''}`, title: isBest ? 'best run' : '' },
            n in (r.metrics ?? {}) ? formatNumber(r.metrics[n]) : '–',
            isBest ? ' ★' : ''
          );
        })
      );
      row.addEventListener('click', () => void this.state.showRun(r.run_id).catch(err => this.notice(String(err), 'error')));
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
        h('span', { className: 'nbscale-muted', title: 'How the best run is chosen' }, direction === 'max' ? 'higher is better' : 'lower is better')
      ),
      h('div', { className: 'nbscale-chart-container' }, chart),
      h('div', { className: 'nbscale-table-scroll' }, table)
    );
  }
}
