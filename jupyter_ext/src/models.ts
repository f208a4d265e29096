/**
 * The JSON models shared with the server (docs/api.md) and the pure logic the panel builds on.
 *
 * Nothing here touches the DOM or JupyterLab: these functions are the ones the jest tests pin.
 */

export type Status =
  | 'pending'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'cached'
  | 'upstream_failed'
  | 'cancelled';

export const STATUSES: Status[] = [
  'pending',
  'running',
  'succeeded',
  'failed',
  'cached',
  'upstream_failed',
  'cancelled'
];

/** Statuses after which a step (or a run) does not change any more. */
export const FINISHED: ReadonlySet<string> = new Set([
  'succeeded',
  'failed',
  'cached',
  'upstream_failed',
  'cancelled'
]);

export type Engine = 'dask' | 'local' | 'papermill';

export interface IParameter {
  name: string;
  type: string;
  default: unknown;
}

export interface IDiagnostic {
  severity: 'error' | 'warning' | 'info' | string;
  code: string;
  message: string;
  cell: number | null;
  line: number | null;
  col: number | null;
  hint?: string | null;
}

export interface IStepNode {
  name: string;
  cells: number[];
  inputs: string[];
  outputs: string[];
  resources: Record<string, unknown>;
  hash: string;
}

export interface IEdge {
  from: string;
  to: string;
  names: string[];
}

export interface IPipelineModel {
  notebook: string;
  name: string;
  steps: IStepNode[];
  edges: IEdge[];
  parameters: IParameter[];
  diagnostics: IDiagnostic[];
  metrics: { step: string | null; names: string[] } | null;
}

export interface IRunSummary {
  run_id: string;
  notebook: string;
  engine: string;
  status: Status | string;
  created: string;
  started: string | null;
  finished: string | null;
  parameters: Record<string, unknown>;
}

export interface IStepError {
  cell: number | null;
  line: number | null;
  ename: string;
  evalue: string;
  traceback: string | string[];
}

export interface IStepRun {
  name: string;
  status: Status | string;
  duration_s: number | null;
  cached: boolean;
  attempts: number;
  started: string | null;
  finished: string | null;
  stdout: string | null;
  stderr: string | null;
  error: IStepError | null;
}

export interface IRunDetail extends IRunSummary {
  steps: IStepRun[];
  metrics: Record<string, number>;
  /** Why the run failed or stopped. */
  error?: string | null;
}

export interface IMetricsHistory {
  names: string[];
  runs: {
    run_id: string;
    created: string;
    status: string;
    metrics: Record<string, number>;
  }[];
}

export interface IWorkerModel {
  address: string;
  name: string;
  nthreads: number;
  memory_used: number;
  memory_limit: number;
  cpu: number;
}

export interface IClusterModel {
  status: 'running' | 'none' | string;
  kind?: string;
  scheduler_address?: string;
  dashboard_link?: string | null;
  workers?: IWorkerModel[];
  threads?: number;
  memory_used?: number;
  memory_limit?: number;
  cpu?: number;
  tasks?: Record<string, number>;
  adaptive?: { minimum: number; maximum: number } | null;
}

export interface IEvent {
  type: 'run' | 'step' | 'cluster' | string;
  run_id?: string;
  step?: string;
  status?: string;
  payload?: any;
}

export type ClusterAction =
  | { action: 'start' }
  | { action: 'connect'; address: string }
  | { action: 'scale'; n: number }
  | { action: 'adapt'; minimum: number; maximum: number }
  | { action: 'close' };

export interface IStartRun {
  path: string;
  engine: Engine;
  parameters: Record<string, unknown>;
  use_cache: boolean;
}

/**
 * What the panel needs from the server; `api.ts` implements it over HTTP, tests with fakes.
 */
export interface IApiClient {
  pipeline(path: string): Promise<IPipelineModel>;
  runs(path: string, limit?: number): Promise<IRunSummary[]>;
  startRun(body: IStartRun): Promise<IRunSummary>;
  run(path: string, runId: string): Promise<IRunDetail>;
  cancelRun(path: string, runId: string): Promise<IRunSummary>;
  metrics(path: string): Promise<IMetricsHistory>;
  cluster(): Promise<IClusterModel>;
  clusterAction(action: ClusterAction): Promise<IClusterModel>;
  kfpYaml(path: string): Promise<string>;
  kfpSubmit(body: {
    path: string;
    parameters: Record<string, unknown>;
    experiment: string;
    run_name: string;
  }): Promise<{ run_url: string }>;
}

/** A server answer that was not 2xx: `{"error": "one clear line", "detail"?}`. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly detail?: unknown
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

// ---------------------------------------------------------------------------------------------
// Run progress

export function isFinished(status: string | null | undefined): boolean {
  return !!status && FINISHED.has(status);
}

export interface IProgress {
  done: number;
  total: number;
  failed: number;
  running: number;
  fraction: number;
}

/** How many steps are finished, out of all the steps of the run (or of the pipeline). */
export function progress(steps: { status: string }[], total?: number): IProgress {
  const n = Math.max(total ?? 0, steps.length);
  let done = 0;
  let failed = 0;
  let running = 0;
  for (const s of steps) {
    if (isFinished(s.status)) {
      done += 1;
    }
    if (s.status === 'failed' || s.status === 'upstream_failed') {
      failed += 1;
    }
    if (s.status === 'running') {
      running += 1;
    }
  }
  return { done, total: n, failed, running, fraction: n ? done / n : 0 };
}

/**
 * The steps of a run in pipeline order, with a pending placeholder for each step the run
 * has not reported yet (a run just started may list none).
 */
export function mergeSteps(
  pipeline: IPipelineModel | null,
  run: IRunDetail | null
): IStepRun[] {
  const byName = new Map<string, IStepRun>();
  for (const s of run?.steps ?? []) {
    byName.set(s.name, s);
  }
  const out: IStepRun[] = [];
  const seen = new Set<string>();
  const names = pipeline?.steps.map(s => s.name) ?? [];
  for (const name of names) {
    seen.add(name);
    out.push(byName.get(name) ?? emptyStep(name));
  }
  for (const s of run?.steps ?? []) {
    if (!seen.has(s.name)) {
      out.push(s);
    }
  }
  return out;
}

export function emptyStep(name: string, status: Status = 'pending'): IStepRun {
  return {
    name,
    status,
    duration_s: null,
    cached: false,
    attempts: 0,
    started: null,
    finished: null,
    stdout: null,
    stderr: null,
    error: null
  };
}

/**
 * Apply a live event to a run detail, without waiting for the next fetch: a step event sets
 * the step's status (and its timestamps when the payload has them), a run event the run's.
 * Returns a new object when something changed, the same one otherwise.
 */
export function applyEvent(run: IRunDetail, event: IEvent): IRunDetail {
  if (event.run_id && event.run_id !== run.run_id) {
    return run;
  }
  const payload = (event.payload ?? {}) as Record<string, any>;
  if (event.type === 'run' && event.status && event.status !== run.status) {
    return { ...run, status: event.status, finished: payload.finished ?? run.finished };
  }
  if (event.type === 'step' && event.step && event.status) {
    const steps = run.steps.slice();
    const i = steps.findIndex(s => s.name === event.step);
    const previous = i >= 0 ? steps[i] : emptyStep(event.step);
    if (previous.status === event.status && !payload.duration_s) {
      return run;
    }
    const next: IStepRun = { ...previous, status: event.status };
    for (const key of ['started', 'finished', 'duration_s', 'cached', 'attempts', 'error'] as const) {
      if (payload[key] !== undefined) {
        (next as any)[key] = payload[key];
      }
    }
    if (event.status === 'cached') {
      next.cached = true;
    }
    if (i >= 0) {
      steps[i] = next;
    } else {
      steps.push(next);
    }
    const status = run.status === 'pending' ? 'running' : run.status;
    return { ...run, status, steps };
  }
  return run;
}

// ---------------------------------------------------------------------------------------------
// Formatting

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '';
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  }
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds - m * 60);
  if (m < 60) {
    return `${m} min ${s} s`;
  }
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !isFinite(bytes)) {
    return '–';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return `${u === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export function formatNumber(value: unknown): string {
  if (typeof value !== 'number' || !isFinite(value)) {
    return String(value ?? '–');
  }
  if (Number.isInteger(value)) {
    return String(value);
  }
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) {
    return value.toExponential(3);
  }
  return value.toFixed(4).replace(/0+$/, '').replace(/\.$/, '');
}

/** A short local time for a run's ISO timestamp. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const d = new Date(iso);
  if (isNaN(d.getTime())) {
    return iso;
  }
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(
    d.getMinutes()
  )}:${pad(d.getSeconds())}`;
}

/** A compact time for narrow tables: the time of day for today's runs, else month-day and time. */
export function formatShortTime(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) {
    return '';
  }
  const d = new Date(iso);
  if (isNaN(d.getTime())) {
    return iso;
  }
  const pad = (n: number) => String(n).padStart(2, '0');
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === now.toDateString()) {
    return time;
  }
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time.slice(0, 5)}`;
}

/** Terminal colour codes in tracebacks (IPython's) would show as garbage in a <pre>. */
export function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;?]*[ -/]*[@-~]/g, '').replace(/\u001b[@-_]/g, '');
}

export function tracebackText(error: IStepError | null | undefined): string {
  if (!error) {
    return '';
  }
  const tb = Array.isArray(error.traceback) ? error.traceback.join('\n') : error.traceback ?? '';
  const text = stripAnsi(tb).trim();
  if (text) {
    return text;
  }
  return errorTitle(error);
}

/** `ename: evalue`, or the plain reason (`upstream failed: a`) a step error may be. */
export function errorTitle(error: IStepError): string {
  const evalue = stripAnsi(String(error.evalue ?? ''));
  return error.ename ? `${error.ename}: ${evalue}` : evalue;
}

// ---------------------------------------------------------------------------------------------
// Parameters

export type ParameterKind = 'int' | 'float' | 'bool' | 'str' | 'json';

export function parameterKind(p: IParameter): ParameterKind {
  const t = (p.type || '').toLowerCase();
  if (t === 'int' || t === 'integer') {
    return 'int';
  }
  if (t === 'float' || t === 'number') {
    return 'float';
  }
  if (t === 'bool' || t === 'boolean') {
    return 'bool';
  }
  if (t === 'str' || t === 'string') {
    return 'str';
  }
  // lists, dicts, None: edited as JSON
  return 'json';
}

/** The text an input shows for a parameter value. */
export function parameterText(kind: ParameterKind, value: unknown): string {
  if (kind === 'json') {
    return JSON.stringify(value ?? null);
  }
  if (kind === 'str') {
    return value === null || value === undefined ? '' : String(value);
  }
  return value === null || value === undefined ? '' : String(value);
}

/**
 * Turn an input's text back into a typed value. Throws an Error with one clear line when the
 * text is not a value of the parameter's type.
 */
export function coerceParameter(kind: ParameterKind, text: string | boolean, name = 'value'): unknown {
  if (kind === 'bool') {
    if (typeof text === 'boolean') {
      return text;
    }
    const t = text.trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(t)) {
      return true;
    }
    if (['false', '0', 'no', 'off', ''].includes(t)) {
      return false;
    }
    throw new Error(`${name}: expected true or false, got "${text}"`);
  }
  const s = String(text);
  if (kind === 'str') {
    return s;
  }
  if (kind === 'int') {
    const t = s.trim();
    if (!/^[-+]?\d+$/.test(t)) {
      throw new Error(`${name}: expected an integer, got "${s}"`);
    }
    return parseInt(t, 10);
  }
  if (kind === 'float') {
    const t = s.trim();
    const v = Number(t);
    if (t === '' || !isFinite(v)) {
      throw new Error(`${name}: expected a number, got "${s}"`);
    }
    return v;
  }
  try {
    return JSON.parse(s);
  } catch {
    throw new Error(`${name}: expected a JSON value, got "${s}"`);
  }
}

/** Only the parameters whose value differs from the notebook's default are sent. */
export function changedParameters(
  parameters: IParameter[],
  values: Record<string, unknown>
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of parameters) {
    if (!(p.name in values)) {
      continue;
    }
    if (JSON.stringify(values[p.name]) !== JSON.stringify(p.default)) {
      out[p.name] = values[p.name];
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Metrics

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

// ---------------------------------------------------------------------------------------------
// Colours

/** Badge / DAG colours, picked by step name so a step keeps its colour across sessions. */
export const STEP_COLOURS = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#9467bd',
  '#ff7f0e',
  '#17becf',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22'
];

/**
 * A step's colour: by its place in the pipeline when the order is known (distinct colours for
 * up to ten steps), else by a hash of its name.
 */
export function stepColour(name: string, order?: readonly string[]): string {
  const i = order ? order.indexOf(name) : -1;
  if (i >= 0) {
    return STEP_COLOURS[i % STEP_COLOURS.length];
  }
  let h = 0;
  for (let i = 0; i < name.length; i++) {
    h = (Math.imul(h, 31) + name.charCodeAt(i)) | 0;
  }
  return STEP_COLOURS[Math.abs(h) % STEP_COLOURS.length];
}

/** The short label a status shows with. */
export function statusLabel(status: string): string {
  return status === 'upstream_failed' ? 'upstream failed' : status;
}

const RANK: Record<string, number> = { pending: 0, running: 1 };

function rank(status: string): number {
  return RANK[status] ?? 2;
}

/**
 * A fetched run detail, merged with what live events already showed: a fetch that left the
 * server before an event arrived must not move a step back (succeeded → running).
 */
export function mergeDetail(previous: IRunDetail | null, fetched: IRunDetail): IRunDetail {
  if (!previous || previous.run_id !== fetched.run_id) {
    return fetched;
  }
  const before = new Map(previous.steps.map(s => [s.name, s]));
  const steps = fetched.steps.map(s => {
    const p = before.get(s.name);
    return p && rank(p.status) > rank(s.status) ? { ...s, status: p.status, finished: p.finished ?? s.finished } : s;
  });
  for (const p of previous.steps) {
    if (!fetched.steps.some(s => s.name === p.name) && rank(p.status) > 0) {
      steps.push(p);
    }
  }
  const status = rank(previous.status) > rank(fetched.status) ? previous.status : fetched.status;
  return { ...fetched, status, steps };
}
