import { EarlyEvents } from '../earlyEvents';
import { detail, stepRun } from './fixtures';

describe('events of runs not shown yet', () => {
  it('replays the events kept for a run onto its detail, once', () => {
    const early = new EarlyEvents();
    early.keep({ type: 'step', run_id: 'r1', step: 'load', status: 'succeeded' });
    early.keep({ type: 'step', run_id: 'r2', step: 'load', status: 'failed' });
    const run = early.replay(detail('r1', 'pending', [stepRun('load', 'running')]));
    expect(run.steps[0].status).toBe('succeeded');
    expect(run.status).toBe('running');
    const again = detail('r1', 'pending', []);
    expect(early.replay(again)).toBe(again);
  });

  it('keeps a bounded few runs and events, and forgets all on clear', () => {
    const early = new EarlyEvents(2, 3);
    for (const id of ['a', 'b', 'c']) {
      early.keep({ type: 'run', run_id: id, status: 'running' });
    }
    expect(early.replay(detail('a', 'pending', [])).status).toBe('pending'); // forgotten
    expect(early.replay(detail('c', 'pending', [])).status).toBe('running');
    for (const step of ['s1', 's2', 's3', 's4']) {
      early.keep({ type: 'step', run_id: 'd', step, status: 'running' });
    }
    expect(early.replay(detail('d', 'running', [])).steps.map(s => s.name)).toEqual(['s2', 's3', 's4']);
    early.keep({ type: 'run', run_id: 'e', status: 'running' });
    early.keep({ type: 'cluster', payload: {} }); // no run: nothing to keep
    early.clear();
    expect(early.replay(detail('e', 'pending', [])).status).toBe('pending');
  });
});
