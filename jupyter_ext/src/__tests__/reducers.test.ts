import {
  applyEvent,
  emptyStep,
  laterStatus,
  LIVE_OUTPUT_CHARS,
  mergeDetail,
  mergeSteps,
  progress,
  progressText,
  STARTING_CLUSTER,
  stepStatuses
} from '../reducers';
import { detail, irisPipeline, stepRun } from './fixtures';

describe('run progress', () => {
  it('counts finished steps against the pipeline', () => {
    const p = progress([stepRun('a', 'succeeded'), stepRun('b', 'cached'), stepRun('c', 'running'), stepRun('d', 'failed')], 6);
    expect(p).toEqual({ done: 3, total: 6, failed: 1, running: 1, queued: 0, fraction: 0.5 });
  });

  it('is empty without steps', () => {
    expect(progress([])).toEqual({ done: 0, total: 0, failed: 0, running: 0, queued: 0, fraction: 0 });
  });

  it('lists every pipeline step in order, pending until reported', () => {
    const run = detail('r', 'running', [stepRun('split', 'running'), stepRun('load', 'succeeded')]);
    const steps = mergeSteps(irisPipeline(), run);
    expect(steps.map(s => s.name)).toEqual(['load', 'split', 'train_lr', 'train_rf', 'evaluate', 'metrics']);
    expect(steps.map(s => s.status)).toEqual(['succeeded', 'running', 'pending', 'pending', 'pending', 'pending']);
  });

  it('keeps steps the pipeline no longer has (the notebook changed since the run)', () => {
    const run = detail('r', 'succeeded', [stepRun('old', 'succeeded')]);
    expect(mergeSteps(irisPipeline(), run).map(s => s.name)).toContain('old');
  });

  it('gives each step its status in the run, none without a run', () => {
    const run = detail('r', 'running', [stepRun('load', 'succeeded')]);
    const statuses = stepStatuses(irisPipeline(), run);
    expect(statuses.load).toBe('succeeded');
    expect(statuses.metrics).toBe('pending');
    expect(Object.keys(statuses)).toHaveLength(6);
    expect(stepStatuses(irisPipeline(), null)).toEqual({});
  });

  it('makes a placeholder for a step not reported yet', () => {
    expect(emptyStep('load')).toMatchObject({ name: 'load', status: 'pending', attempts: 0, error: null });
  });
});

describe('live events', () => {
  const run = detail('r1', 'running', [stepRun('load', 'running')]);

  it('sets a step status from a step event, with the payload timestamps', () => {
    const next = applyEvent(run, {
      type: 'step',
      run_id: 'r1',
      step: 'load',
      status: 'succeeded',
      payload: { finished: '2026-01-01T00:00:01+00:00', duration_s: 1.5 }
    });
    expect(next).not.toBe(run);
    expect(next.steps[0]).toMatchObject({ status: 'succeeded', duration_s: 1.5, finished: '2026-01-01T00:00:01+00:00' });
    expect(run.steps[0].status).toBe('running'); // not mutated
  });

  it('adds a step it has not seen', () => {
    const next = applyEvent(run, { type: 'step', run_id: 'r1', step: 'split', status: 'running' });
    expect(next.steps.map(s => s.name)).toEqual(['load', 'split']);
  });

  it('marks cached steps', () => {
    const next = applyEvent(run, { type: 'step', run_id: 'r1', step: 'load', status: 'cached' });
    expect(next.steps[0].cached).toBe(true);
  });

  it('ignores events of other runs and events that change nothing', () => {
    expect(applyEvent(run, { type: 'step', run_id: 'other', step: 'load', status: 'failed' })).toBe(run);
    expect(applyEvent(run, { type: 'step', run_id: 'r1', step: 'load', status: 'running' })).toBe(run);
    expect(applyEvent(run, { type: 'cluster', payload: {} })).toBe(run);
  });

  it('sets the run status from a run event', () => {
    expect(applyEvent(run, { type: 'run', run_id: 'r1', status: 'succeeded' }).status).toBe('succeeded');
  });

  it('never moves a finished run back: a late event or a cancel answer sent before the run ended', () => {
    const cancelled = detail('r1', 'cancelled', [stepRun('load', 'cancelled')]);
    expect(applyEvent(cancelled, { type: 'run', run_id: 'r1', status: 'running' })).toBe(cancelled);
    expect(applyEvent(cancelled, { type: 'run', run_id: 'r1', status: 'pending' })).toBe(cancelled);
    expect(laterStatus('cancelled', 'running')).toBe('cancelled');
    expect(laterStatus('running', 'cancelled')).toBe('cancelled');
    expect(laterStatus('cancelled', 'failed')).toBe('failed'); // the server's final word among final states
    expect(mergeDetail(cancelled, detail('r1', 'running', [])).status).toBe('cancelled');
  });

  it('never moves a step back when a stale fetch arrives after an event', () => {
    const shown = detail('r1', 'running', [stepRun('load', 'succeeded'), stepRun('split', 'running')]);
    const fetched = detail('r1', 'running', [stepRun('load', 'running'), stepRun('split', 'succeeded', { duration_s: 2 })]);
    const merged = mergeDetail(shown, fetched);
    expect(merged.steps.map(s => s.status)).toEqual(['succeeded', 'succeeded']);
    expect(merged.steps[1].duration_s).toBe(2);
    // another run replaces
    expect(mergeDetail(shown, detail('r2', 'pending', []))).toEqual(detail('r2', 'pending', []));
  });
});

describe('live run status', () => {
  const step = (name: string, kind: string, status?: string, payload: Record<string, unknown> = {}) => ({
    type: 'step',
    run_id: 'r',
    step: name,
    status,
    payload: { kind, ...payload }
  });

  it('shows a step queued, then running once it started, never back to queued', () => {
    let run = detail('r', 'running', []);
    run = applyEvent(run, step('train', 'step_queued', 'queued'));
    expect(run.steps[0].status).toBe('queued');
    run = applyEvent(run, step('train', 'step_started', 'running', { started: '2026-12-02T00:00:00+00:00' }));
    expect(run.steps[0]).toMatchObject({ status: 'running', started: '2026-12-02T00:00:00+00:00' });
    expect(applyEvent(run, step('train', 'step_queued', 'queued'))).toBe(run);
    run = applyEvent(run, step('train', 'step_finished', 'succeeded', { duration_s: 0.007 }));
    expect(applyEvent(run, step('train', 'step_started', 'running'))).toBe(run);
    expect(progress(run.steps)).toMatchObject({ done: 1, running: 0, queued: 0 });
  });

  it('reads a queued step from the event kind alone', () => {
    const run = applyEvent(detail('r', 'running', []), step('a', 'step_queued'));
    expect(run.steps[0].status).toBe('queued');
    expect(progress(run.steps).queued).toBe(1);
  });

  it("streams a running step's output, keeping its tail, until the stored output comes", () => {
    let run = detail('r', 'running', [stepRun('a', 'running')]);
    run = applyEvent(run, step('a', 'step_output', undefined, { stream: 'stdout', text: 'epoch 1\n' }));
    run = applyEvent(run, step('a', 'step_output', undefined, { stream: 'stdout', text: 'epoch 2\n' }));
    run = applyEvent(run, step('a', 'step_output', undefined, { stream: 'stderr', text: 'warn\n' }));
    expect(run.steps[0]).toMatchObject({ status: 'running', stdout: 'epoch 1\nepoch 2\n', stderr: 'warn\n' });
    const long = applyEvent(run, step('a', 'step_output', undefined, { stream: 'stdout', text: 'x'.repeat(LIVE_OUTPUT_CHARS) }));
    expect(long.steps[0].stdout!.length).toBe(LIVE_OUTPUT_CHARS);
    // a fetch while it runs has no stored output yet: the live output stays
    const fetched = mergeDetail(run, detail('r', 'running', [stepRun('a', 'running')]));
    expect(fetched.steps[0].stdout).toBe('epoch 1\nepoch 2\n');
    // once finished, the stored output is the one shown, and late output is ignored
    const done = mergeDetail(run, detail('r', 'succeeded', [stepRun('a', 'succeeded', { stdout: 'stored\n' })]));
    expect(done.steps[0].stdout).toBe('stored\n');
    expect(applyEvent(done, step('a', 'step_output', undefined, { stream: 'stdout', text: 'late' }))).toBe(done);
  });

  it('shows "starting cluster" until the cluster started or a step moves', () => {
    const run = detail('r', 'running', []);
    const starting = applyEvent(run, { type: 'run', run_id: 'r', payload: { kind: 'cluster_starting' } });
    expect(starting.phase).toBe(STARTING_CLUSTER);
    expect(applyEvent(starting, { type: 'run', run_id: 'r', payload: { kind: 'warning' } }).phase).toBe(STARTING_CLUSTER);
    expect(applyEvent(starting, { type: 'run', run_id: 'r', payload: { kind: 'cluster_started' } }).phase).toBeNull();
    expect(applyEvent(starting, step('a', 'step_queued', 'queued')).phase).toBeNull();
    expect(applyEvent(starting, { type: 'run', run_id: 'r', status: 'cancelled', payload: { kind: 'run_finished' } }).phase).toBeNull();
  });

  it('never says 100 % of a run that did not succeed', () => {
    const cancelled = progress(
      [stepRun('a', 'succeeded'), stepRun('b', 'cancelled'), stepRun('c', 'cancelled'), stepRun('d', 'cancelled')],
      4
    );
    expect(cancelled.done).toBe(1);
    expect(progressText('cancelled', cancelled)).toEqual({ count: '1 of 4 steps finished', bar: 'cancelled: 1/4' });
    const lastFailed = progress([stepRun('a', 'succeeded'), stepRun('b', 'failed')], 2);
    expect(progressText('failed', lastFailed).bar).toBe('failed: 2/2');
    const running = progress([stepRun('a', 'succeeded'), stepRun('b', 'succeeded'), stepRun('c', 'running')], 3);
    expect(progressText('running', running)).toEqual({ count: '2/3 steps', bar: '66%' });
    // every step reported but the run not finished yet (its end is on its way): still not 100 %
    expect(progressText('running', progress([stepRun('a', 'succeeded')], 1)).bar).toBe('99%');
    expect(progressText('succeeded', progress([stepRun('a', 'succeeded')], 1)).bar).toBe('100%');
  });
});
