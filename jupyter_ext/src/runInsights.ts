/**
 * What a finished run's detail says beyond its steps (jupyter_ext/runs.py `run_insights`): the
 * metrics that regressed against the previous or the best earlier run (kernels/regressions.py),
 * and what the run cost and its cache hits saved (kernels/cost.py). Types of those models, and
 * the small views the Metrics and Run sections show. Text goes in through textContent only.
 */
import { h } from './dom';
import { formatBytes, formatDuration, formatNumber } from './format';
import { IRunDetail } from './wire';

export interface IRegressionReference {
  run_id: string;
  created: string;
  value: number;
  delta: number | null;
  relative: number | null;
  regressed: boolean;
  better: boolean;
}

export interface IMetricRegression {
  name: string;
  value: number | null;
  direction: 'min' | 'max' | null;
  status: 'regressed' | 'ok' | 'improved' | 'first' | 'direction unknown' | string;
  regressed: boolean;
  reason: string;
  previous: IRegressionReference | null;
  best: IRegressionReference | null;
}

export interface IRegressionReport {
  run_id: string;
  regressed: string[];
  metrics: IMetricRegression[];
}

export interface ICostTotals {
  /** The run's own time from start to end (steps in parallel overlap). */
  elapsed_s?: number | null;
  wall_s: number | null;
  cpu_s: number | null;
  peak_rss_bytes: number | null;
  cost: number | null;
  cached: number;
  saved_s: number | null;
  saved_cost: number | null;
}

export interface IRunCost {
  run_id: string;
  prices: { core_hour: number; gb_hour: number; unit: string };
  steps: ({ step: string; status: string; cached: boolean } & Omit<ICostTotals, 'cached'>)[];
  total: ICostTotals;
}

/** A run detail as a finished run's is sent: with its regressions and cost (absent while it runs). */
export interface IRunInsights {
  regressions?: IRegressionReport;
  cost?: IRunCost;
  /** A project setting (pyproject.toml) could not be read: why. */
  insights_error?: string;
}

export function insightsOf(run: IRunDetail | null | undefined): IRunInsights {
  return (run ?? {}) as IRunInsights;
}

/** The regression row of a metric of the run, when that metric regressed. */
export function regressionOf(run: IRunDetail | null | undefined, metric: string): IMetricRegression | null {
  const report = insightsOf(run).regressions;
  return report?.metrics?.find(m => m.name === metric && m.regressed) ?? null;
}

/** "⚠ 2 metrics regressed" and one line per metric with its reason; null when none did. */
export function renderRegressions(run: IRunDetail | null | undefined): HTMLElement | null {
  const report = insightsOf(run).regressions;
  const rows = (report?.metrics ?? []).filter(m => m.regressed);
  if (!rows.length) {
    return null;
  }
  const list = h('ul', { className: 'nbscale-regression-list' });
  for (const row of rows) {
    list.appendChild(
      h(
        'li',
        { 'data-metric': row.name },
        h('strong', {}, row.name),
        ` = ${formatNumber(row.value ?? NaN)}: ${row.reason}`
      )
    );
  }
  return h(
    'div',
    { className: 'nbscale-regressions', role: 'status' },
    h('p', { className: 'nbscale-error' }, `⚠ ${rows.length} metric${rows.length === 1 ? '' : 's'} regressed`),
    list
  );
}

/** A cost as text: up to three significant digits and the unit. */
export function formatCost(value: number | null | undefined, unit = 'units'): string {
  if (value === null || value === undefined || !isFinite(value)) {
    return '–';
  }
  return `${value === 0 ? '0' : Number(value.toPrecision(3)).toString()} ${unit}`;
}

/** One line: cost, CPU time, peak memory, and what cached steps saved; the prices in its title. */
export function renderCost(run: IRunDetail | null | undefined): HTMLElement | null {
  const insights = insightsOf(run);
  if (insights.insights_error) {
    return h('p', { className: 'nbscale-muted nbscale-cost' }, `Cost and regressions: ${insights.insights_error}`);
  }
  const cost = insights.cost;
  if (!cost) {
    return null;
  }
  const t = cost.total;
  const unit = cost.prices?.unit ?? 'units';
  const parts = [
    `cost ${formatCost(t.cost, unit)}`,
    `cpu ${formatDuration(t.cpu_s) || '–'}`,
    `peak memory ${formatBytes(t.peak_rss_bytes)}`
  ];
  if (t.cached) {
    parts.push(`${t.cached} cached step${t.cached === 1 ? '' : 's'} saved ${formatDuration(t.saved_s) || '–'} (${formatCost(t.saved_cost, unit)})`);
  }
  const title = `prices: ${cost.prices.core_hour} per CPU-hour, ${cost.prices.gb_hour} per GB-hour (nbscale cost ${cost.run_id.slice(0, 12)})`;
  return h('p', { className: 'nbscale-muted nbscale-cost', title }, parts.join(' · '));
}

/** Attributes of a metric's row in the run's table: marked, with the reason as its title, when it regressed. */
export function regressedRow(run: IRunDetail | null | undefined, metric: string): { className?: string; title?: string } {
  const row = regressionOf(run, metric);
  return row ? { className: 'nbscale-regressed', title: `regressed: ${row.reason}` } : {};
}
