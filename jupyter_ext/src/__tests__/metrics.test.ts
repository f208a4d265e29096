import { bestRun, bestRuns, metricDirection, metricSeries } from '../metrics';
import { history } from './fixtures';

describe('metrics', () => {
  it('maximises scores and minimises losses unless told otherwise', () => {
    expect(metricDirection('accuracy')).toBe('max');
    expect(metricDirection('val_loss')).toBe('min');
    expect(metricDirection('rmse')).toBe('min');
    expect(metricDirection('accuracy', { accuracy: 'min' })).toBe('min');
  });

  it('finds the best run (earliest on ties)', () => {
    const h = history();
    expect(bestRun(h, 'acc_lr')).toBe('r2');
    expect(bestRun(h, 'acc_rf')).toBe('r1'); // r1 and r3 tie at 0.97; r1 came first
    expect(bestRun(h, 'acc_lr', 'min')).toBe('r1');
    expect(bestRun(h, 'missing')).toBeNull();
  });

  it('orders a series oldest first and skips runs without the metric', () => {
    const h = history();
    h.runs.push({ run_id: 'r0', created: '2026-11-28T09:00:00+00:00', status: 'failed', metrics: {} });
    expect(metricSeries(h, 'acc_lr').map(p => p.run_id)).toEqual(['r1', 'r2', 'r3']);
  });

  it('finds the best run of every metric, following the metricDirections setting', () => {
    expect(bestRuns(history())).toEqual({ acc_lr: 'r2', acc_rf: 'r1' });
    expect(bestRuns(history(), { acc_lr: 'min' })).toEqual({ acc_lr: 'r1', acc_rf: 'r1' });
  });
});
