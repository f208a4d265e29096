/**
 * The shown run's state from what the server says: live events applied at once, fetched
 * details merged without moving a step back, the steps in pipeline order, progress counts.
 *
 * Pure functions of the wire models: they return new objects and never mutate their inputs.
 */
import { IEvent, IPipelineModel, IRunDetail, isFinished, IStepRun, Status } from './wire';

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

// pending < running < any finished status: how far a step (or run) has got
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
