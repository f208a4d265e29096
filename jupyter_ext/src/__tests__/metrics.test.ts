import { bestRun, bestRuns, metricDirection, metricSeries, runLabel, varyingParameters } from '../metrics';
import { history } from './fixtures';

describe('metrics', () => {
  it('takes the direction the server ships, then the setting, else higher is better', () => {
    // the server decides by whole words and the notebook's metadata (compiler/metric_direction.py)
    expect(metricDirection('uptime', { uptime: 'max', val_loss: 'min' })).toBe('max');
    expect(metricDirection('val_loss', { uptime: 'max', val_loss: 'min' })).toBe('min');
    expect(metricDirection('val_loss', { val_loss: 'min' }, { val_loss: 'max' })).toBe('min');
    expect(metricDirection('accuracy', {}, { accuracy: 'min' })).toBe('min');
    expect(metricDirection('accuracy', { accuracy: 'bogus' })).toBe('max');
    expect(metricDirection('loss')).toBe('max'); // no name rule in the panel: one rule, on the server
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

  it('finds the best run of every metric, by the shipped direction, else the setting', () => {
    expect(bestRuns(history())).toEqual({ acc_lr: 'r2', acc_rf: 'r1' });
    expect(bestRuns(history(), { acc_lr: 'min' })).toEqual({ acc_lr: 'r1', acc_rf: 'r1' });
    const shipped = { ...history(), directions: { acc_lr: 'min', acc_rf: 'max' } };
    expect(bestRuns(shipped)).toEqual({ acc_lr: 'r1', acc_rf: 'r1' });
    expect(bestRuns(shipped, { acc_lr: 'max' })).toEqual({ acc_lr: 'r1', acc_rf: 'r1' });
  });

  it('names parameters that differ between runs', () => {
    const runs = [{ parameters: { seed: 1, C: 1.0, tag: 'a' } }, { parameters: { seed: 2, C: 1.0, tag: 'a', extra: [1] } }];
    expect(varyingParameters(runs)).toEqual(['seed', 'extra']);
    expect(varyingParameters([{ parameters: { seed: 1 } }])).toEqual([]);
    expect(runLabel('0123456789abcdef')).toBe('01234567');
  });
});
