/**
 * The shown run's state from what the server says: live events applied at once (queued and
 * running steps, a running step's output and its Dask compute's progress, the cluster starting),
 * fetched details merged without moving a step back, the steps in pipeline order, progress counts
 * that never say 100 % of a run that did not succeed.
 *
 * Pure functions of the wire models: they return new objects and never mutate their inputs.
 */
import { IEvent, IPipelineModel, IRunDetail, isFinished, IStepRun, Status } from './wire';

// event kinds (payload.kind) the reducers read (kernels/contract.py)
const STEP_QUEUED = 'step_queued';
const STEP_OUTPUT = 'step_output';
const STEP_PROGRESS = 'step_progress';
const CLUSTER_STARTING = 'cluster_starting';
const CLUSTER_STARTED = 'cluster_started';
/** The phase a run shows while its embedded cluster starts. */
export const STARTING_CLUSTER = 'starting cluster';
/** How much of a running step's live output the panel keeps (the tail). */
export const LIVE_OUTPUT_CHARS = 20000;
// statuses of a step that ran to its end (cancelled and upstream-failed steps never did)
const RAN: ReadonlySet<string> = new Set(['succeeded', 'cached', 'failed']);

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

export interface IProgress {
  /** Steps that ran to their end (succeeded, cached or failed): not cancelled or skipped ones. */
  done: number;
  total: number;
  failed: number;
  running: number;
  queued: number;
  fraction: number;
}

/** How many steps ran to their end, out of all the steps of the run (or of the pipeline). */
export function progress(steps: { status: string }[], total?: number): IProgress {
  const n = Math.max(total ?? 0, steps.length);
  let done = 0;
  let failed = 0;
  let running = 0;
  let queued = 0;
  for (const s of steps) {
    if (RAN.has(s.status)) {
      done += 1;
    }
    if (s.status === 'failed' || s.status === 'upstream_failed') {
      failed += 1;
    }
    if (s.status === 'running') {
      running += 1;
    }
    if (s.status === 'queued') {
      queued += 1;
    }
  }
  return { done, total: n, failed, running, queued, fraction: n ? done / n : 0 };
}

/**
 * What the progress of a run in `runStatus` says: `count` beside the status ("2/4 steps"), and
 * the bar's label. Only a succeeded run is 100 %: an unfinished run's percentage is rounded down,
 * a run that ended otherwise shows how many steps finished, out of how many, with its status.
 */
export function progressText(runStatus: string, p: IProgress): { count: string; bar: string } {
  const count = `${p.done}/${p.total} steps`;
  if (runStatus === 'succeeded') {
    return { count, bar: '100%' };
  }
  if (isFinished(runStatus)) {
    const label = runStatus === 'upstream_failed' ? 'upstream failed' : runStatus;
    return { count: `${p.done} of ${p.total} steps finished`, bar: `${label}: ${p.done}/${p.total}` };
  }
  const percent = p.total ? Math.min(99, Math.floor((100 * p.done) / p.total)) : 0;
  return { count, bar: `${percent}%` };
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

/** The run's status per step (pending for steps not reported yet); empty without a run. */
export function stepStatuses(
  pipeline: IPipelineModel | null,
  run: IRunDetail | null
): Record<string, string> {
  const out: Record<string, string> = {};
  if (!run) {
    return out;
  }
  for (const step of mergeSteps(pipeline, run)) {
    out[step.name] = step.status;
  }
  return out;
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
  if (event.type === 'run' && !event.status && (payload.kind === CLUSTER_STARTING || payload.kind === CLUSTER_STARTED)) {
    return applyPhase(run, payload.kind === CLUSTER_STARTING ? STARTING_CLUSTER : null);
  }
  if (event.type === 'run' && event.status && laterStatus(run.status, event.status) !== run.status) {
    const phase = isFinished(event.status) ? null : run.phase;
    return { ...run, status: event.status, finished: payload.finished ?? run.finished, phase };
  }
  if (event.type === 'step' && event.step && payload.kind === STEP_OUTPUT) {
    return applyOutput(run, event.step, payload.stream, payload.text);
  }
  if (event.type === 'step' && event.step && payload.kind === STEP_PROGRESS) {
    return applyCompute(run, event.step, payload.done, payload.total);
  }
  const status = event.status ?? (payload.kind === STEP_QUEUED ? 'queued' : undefined);
  if (event.type === 'step' && event.step && status) {
    const steps = run.steps.slice();
    const i = steps.findIndex(s => s.name === event.step);
    const previous = i >= 0 ? steps[i] : emptyStep(event.step);
    if ((previous.status === status && !payload.duration_s) || rank(status) < rank(previous.status)) {
      return run; // events of one step come in order; a late one never moves it back
    }
    const next: IStepRun = { ...previous, status };
    for (const key of ['started', 'finished', 'duration_s', 'cached', 'attempts', 'error'] as const) {
      if (payload[key] !== undefined) {
        (next as any)[key] = payload[key];
      }
    }
    if (status === 'cached') {
      next.cached = true;
    }
    if (i >= 0) {
      steps[i] = next;
    } else {
      steps.push(next);
    }
    const runStatus = run.status === 'pending' ? 'running' : run.status;
    // a step queued or started: the cluster is up
    return { ...run, status: runStatus, steps, phase: null };
  }
  return run;
}

function applyPhase(run: IRunDetail, phase: string | null): IRunDetail {
  return (run.phase ?? null) === phase || isFinished(run.status) ? run : { ...run, phase };
}

/** A running step's output so far, the tail of it, on the stream it came on. */
function applyOutput(run: IRunDetail, step: string, stream: unknown, text: unknown): IRunDetail {
  if (typeof text !== 'string' || !text) {
    return run;
  }
  const key = stream === 'stderr' ? 'stderr' : 'stdout';
  const steps = run.steps.slice();
  const i = steps.findIndex(s => s.name === step);
  const previous = i >= 0 ? steps[i] : emptyStep(step, 'running');
  if (isFinished(previous.status)) {
    return run; // the stored output came with the step's end
  }
  const next = { ...previous, [key]: ((previous[key] ?? '') + text).slice(-LIVE_OUTPUT_CHARS) };
  if (i >= 0) {
    steps[i] = next;
  } else {
    steps.push(next);
  }
  return { ...run, steps };
}

/** How far a running step's Dask compute got (tasks done of its total); a finished step shows none. */
function applyCompute(run: IRunDetail, step: string, done: unknown, total: unknown): IRunDetail {
  if (typeof done !== 'number' || typeof total !== 'number' || total <= 0) {
    return run;
  }
  const steps = run.steps.slice();
  const i = steps.findIndex(s => s.name === step);
  const previous = i >= 0 ? steps[i] : emptyStep(step, 'running');
  if (isFinished(previous.status)) {
    return run;
  }
  const next = { ...previous, compute: { done, total } };
  if (i >= 0) {
    steps[i] = next;
  } else {
    steps.push(next);
  }
  return { ...run, steps };
}

// pending < queued < running < any finished status: how far a step (or run) has got
const RANK: Record<string, number> = { pending: 0, queued: 1, running: 2 };

function rank(status: string): number {
  return RANK[status] ?? 3;
}

/**
 * The status a run (or step) has once `next` is heard after `current`: `next`, unless it is an
 * earlier state (a late "running" after "cancelled", a cancel's answer sent before the run ended).
 */
export function laterStatus(current: Status | string, next: Status | string): Status {
  return (rank(next) < rank(current) ? current : next) as Status;
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
    if (!p) {
      return s;
    }
    const merged = rank(p.status) > rank(s.status) ? { ...s, status: p.status, finished: p.finished ?? s.finished } : s;
    // a step still running has no stored output yet: keep what its live output and compute showed
    return isFinished(merged.status)
      ? merged
      : { ...merged, stdout: s.stdout || p.stdout, stderr: s.stderr || p.stderr, compute: p.compute };
  });
  for (const p of previous.steps) {
    if (!fetched.steps.some(s => s.name === p.name) && rank(p.status) > 0) {
      steps.push(p);
    }
  }
  const status = laterStatus(previous.status, fetched.status);
  return { ...fetched, status, steps, phase: isFinished(status) ? null : previous.phase ?? null };
}
