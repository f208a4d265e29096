import { applyEvent, emptyStep, mergeDetail, mergeSteps, progress, stepStatuses } from '../reducers';
import { detail, irisPipeline, stepRun } from './fixtures';

describe('run progress', () => {
  it('counts finished steps against the pipeline', () => {
    const p = progress([stepRun('a', 'succeeded'), stepRun('b', 'cached'), stepRun('c', 'running'), stepRun('d', 'failed')], 6);
    expect(p).toEqual({ done: 3, total: 6, failed: 1, running: 1, fraction: 0.5 });
  });

  it('is empty without steps', () => {
    expect(progress([])).toEqual({ done: 0, total: 0, failed: 0, running: 0, fraction: 0 });
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
