import { renderLineChart, valueScale } from '../chart';
import { metricSeries } from '../metrics';
import { history } from './fixtures';

describe('metric chart', () => {
  it('draws one point per run, oldest first, and marks the best', () => {
    const svg = renderLineChart(metricSeries(history(), 'acc_lr'), { best: 'r2' });
    const points = Array.from(svg.querySelectorAll('.nbscale-chart-point'));
    expect(points.map(p => p.getAttribute('data-run'))).toEqual(['r1', 'r2', 'r3']);
    const best = svg.querySelectorAll('.nbscale-chart-best');
    expect(best).toHaveLength(1);
    expect(best[0].getAttribute('data-run')).toBe('r2');
    expect(svg.querySelector('.nbscale-chart-best-label')!.textContent).toContain('best');
    expect(svg.querySelector('.nbscale-chart-line')).not.toBeNull();
  });

  it('puts a higher value higher up', () => {
    const svg = renderLineChart(metricSeries(history(), 'acc_lr'));
    const y = (run: string) => Number(svg.querySelector(`[data-run="${run}"]`)!.getAttribute('cy'));
    expect(y('r2')).toBeLessThan(y('r1')); // 0.97 above 0.90
  });

  it('copes with one run and with none', () => {
    const one = renderLineChart([{ run_id: 'a', created: '2026-01-01', value: 1 }]);
    expect(one.querySelectorAll('.nbscale-chart-point')).toHaveLength(1);
    expect(one.querySelector('.nbscale-chart-line')).toBeNull();
    const none = renderLineChart([]);
    expect(none.textContent).toContain('no runs yet');
  });

  it('gives a flat series a non-empty range', () => {
    const s = valueScale([2, 2]);
    expect(s.max).toBeGreaterThan(s.min);
    expect(valueScale([0, 0]).max).toBeGreaterThan(0);
    const r = valueScale([1, 3]);
    expect(r.min).toBeLessThan(1);
    expect(r.max).toBeGreaterThan(3);
  });
});
