/**
 * The contract with the server: the JSON models `/nbscale/api/...` sends and takes (docs/api.md,
 * built by jupyter_ext/models.py), the step statuses they carry, and the calls the panel makes.
 *
 * Types only, plus the status vocabulary: no logic, no DOM, no JupyterLab.
 */

export type Status =
  | 'pending'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'cached'
  | 'upstream_failed'
  | 'cancelled'
  // live only (kernels/contract.py's QUEUED, from a `step_queued` event): never a stored status
  | 'queued';

/** Every step and run status (kernels/contract.py's STATUSES). */
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

export function isFinished(status: string | null | undefined): boolean {
  return !!status && FINISHED.has(status);
}

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
  /** Why a stored result was not reused: the dependencies that changed (absent from older servers). */
  stale?: string[];
  /** Live only, from events: how far the running step's Dask compute on the cluster got, in tasks. */
  compute?: IComputeProgress | null;
}

/** A `step_progress` event's count: tasks of one compute done, out of its total. */
export interface IComputeProgress {
  done: number;
  total: number;
}

export interface IRunDetail extends IRunSummary {
  steps: IStepRun[];
  metrics: Record<string, number>;
  /** Why the run failed or stopped. */
  error?: string | null;
  /** Live only, from events: what the run is doing before its steps ('starting cluster'). */
  phase?: string | null;
}

/** One output of a step's cell, as a kernel showed it (kernels/steplog.py's cell records). */
export type ICellOutput =
  | { type: 'stream'; name: 'stdout' | 'stderr' | string; text: string }
  | { type: 'text'; text: string }
  | { type: 'image'; mime: string; file: string }
  | { type: 'error'; ename: string; evalue: string }
  | { type: 'other'; mimes: string[] };

export interface ICellWarning {
  cell: number | null;
  line: number | null;
  category: string;
  message: string;
  where: string;
}

export interface ICellRecord {
  /** 0-based index of the cell in the notebook. */
  cell: number;
  outputs: ICellOutput[];
  warnings: ICellWarning[];
}

/** GET /nbscale/api/runs/RUN/steps/STEP (jupyter_ext/stepdetail.py). */
export interface IStepDetail extends IStepRun {
  run_id: string;
  cells: ICellRecord[];
  inputs: { name: string; from: string | null; bytes: number | null }[];
  outputs: { name: string; bytes: number | null; marshaller: string | null }[];
}

export interface IMetricsHistory {
  names: string[];
  runs: {
    run_id: string;
    created: string;
    status: string;
    metrics: Record<string, number>;
  }[];
  /** "min" (lower is better) or "max" per metric: the notebook's metadata, else the name (compiler/metric_direction.py). */
  directions?: Record<string, 'min' | 'max' | string>;
}

/** GET /nbscale/api/compare: runs side by side (kernels/compare.py; the first run is the reference). */
export interface IComparedRun {
  run_id: string;
  notebook: string;
  /** A run of another notebook than the one the panel follows. */
  other_notebook: boolean;
  pipeline: string | null;
  engine: string | null;
  status: string;
  created: string | null;
  started: string | null;
  finished: string | null;
  duration_s: number | null;
}

export interface IComparedStep {
  status: string;
  duration_s: number | null;
  cached: boolean;
  /** Its code ran in this run. */
  ran: boolean;
  hash: string | null;
  stale: string[];
  /** Why it ran, or what happened instead, against the reference run. */
  why: string;
}

export interface IComparison {
  notebook: string;
  runs: IComparedRun[];
  parameters: { name: string; values: unknown[]; set: boolean[]; changed: boolean }[];
  steps: { name: string; runs: (IComparedStep | null)[]; reran: boolean }[];
  metrics: {
    name: string;
    direction: 'min' | 'max' | string;
    values: (number | null)[];
    deltas: (number | null)[];
    relative: (number | null)[];
    better: (boolean | null)[];
    changed: boolean;
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

/** Dask's own dashboard link; `proxy_path` (`proxy/<port>/status`, under the Jupyter server's
 * base URL) when jupyter-server-proxy reaches it; `note`: why there is no link, or why it is direct. */
export interface IDashboardModel {
  link: string | null;
  proxy_path: string | null;
  note: string | null;
}

export interface IClusterModel {
  status: 'running' | 'none' | string;
  kind?: string;
  scheduler_address?: string;
  dashboard_link?: string | null;
  /** Where the browser finds the Dask dashboard (server: cluster.dashboard_model). */
  dashboard?: IDashboardModel | null;
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

export interface IKfpSubmit {
  path: string;
  parameters: Record<string, unknown>;
  experiment: string;
  run_name: string;
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
  kfpSubmit(body: IKfpSubmit): Promise<{ run_url: string }>;
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
