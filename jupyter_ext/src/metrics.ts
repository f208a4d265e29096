/**
 * Run metrics across runs: whether a metric is better high or low (by its name, unless the
 * `metricDirections` setting says), the best run of each metric, and a metric's series.
 */
import { IMetricsHistory } from './wire';

export type Direction = 'max' | 'min';

const LOWER_IS_BETTER = /(loss|error|err$|mse|mae|rmse|mape|logloss|perplexity|latency|time|duration)/i;

export function metricDirection(name: string, overrides: Record<string, string> = {}): Direction {
  const o = overrides[name];
  if (o === 'min' || o === 'max') {
    return o;
  }
  return LOWER_IS_BETTER.test(name) ? 'min' : 'max';
}

/** The run id with the best value of a metric (ties: the earliest run), or null. */
export function bestRun(
  history: IMetricsHistory,
  name: string,
  direction: Direction = metricDirection(name)
): string | null {
  let best: { id: string; value: number; created: string } | null = null;
  for (const run of history.runs) {
    const v = run.metrics?.[name];
    if (typeof v !== 'number' || !isFinite(v)) {
      continue;
    }
    const better =
      best === null ||
      (direction === 'max' ? v > best.value : v < best.value) ||
      (v === best.value && run.created < best.created);
    if (better) {
      best = { id: run.run_id, value: v, created: run.created };
    }
  }
  return best?.id ?? null;
}

/** The best run of each metric of a history. */
export function bestRuns(history: IMetricsHistory, overrides: Record<string, string> = {}): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const name of history.names) {
    out[name] = bestRun(history, name, metricDirection(name, overrides));
  }
  return out;
}

export interface ISeriesPoint {
  run_id: string;
  created: string;
  value: number;
}

/** One metric across runs, oldest first (the server lists runs newest first). */
export function metricSeries(history: IMetricsHistory, name: string): ISeriesPoint[] {
  return history.runs
    .filter(r => typeof r.metrics?.[name] === 'number' && isFinite(r.metrics[name]))
    .map(r => ({ run_id: r.run_id, created: r.created, value: r.metrics[name] }))
    .sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : 0));
}
