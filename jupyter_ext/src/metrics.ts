/**
 * Run metrics across runs: whether a metric is better high or low, the best run of each metric,
 * a metric's series, and the parameters that differ between runs.
 *
 * The direction is decided in one place, on the server (compiler/metric_direction.py: the
 * notebook's metadata.nbscale.metrics, else whole words of the name), and shipped with the
 * metrics history and the comparison; the panel only reads it. The `metricDirections` setting
 * applies to a metric the server sent no direction for.
 */
import { IMetricsHistory } from './wire';

export type Direction = 'max' | 'min';

function asDirection(value: string | undefined): Direction | null {
  return value === 'min' || value === 'max' ? value : null;
}

/** The shipped direction of a metric; else the setting's; else higher is better. */
export function metricDirection(
  name: string,
  shipped: Record<string, string> = {},
  overrides: Record<string, string> = {}
): Direction {
  return asDirection(shipped[name]) ?? asDirection(overrides[name]) ?? 'max';
}

/** The run id with the best value of a metric (ties: the earliest run), or null. */
export function bestRun(
  history: IMetricsHistory,
  name: string,
  direction: Direction = metricDirection(name, history.directions)
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
    out[name] = bestRun(history, name, metricDirection(name, history.directions, overrides));
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

/** How a run is named where space is short: the start of its id (a unique prefix for the CLI). */
export function runLabel(runId: string): string {
  return runId.slice(0, 8);
}

/** The names of parameters whose value is not the same in every run (in first-seen order). */
export function varyingParameters(runs: { parameters?: Record<string, unknown> }[]): string[] {
  const names: string[] = [];
  for (const run of runs) {
    for (const name of Object.keys(run.parameters ?? {})) {
      if (!names.includes(name)) {
        names.push(name);
      }
    }
  }
  const key = (v: unknown) => (v === undefined ? '\u0000absent' : JSON.stringify(v));
  return names.filter(name => new Set(runs.map(r => key(r.parameters?.[name]))).size > 1);
}
