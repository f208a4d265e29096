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

describe('metric chart labels', () => {
  it('labels each point with its run', () => {
    const svg = renderLineChart(metricSeries(history(), 'acc_lr'));
    const labels = Array.from(svg.querySelectorAll('.nbscale-chart-run'));
    expect(labels.map(l => l.getAttribute('data-label-of'))).toEqual(['r1', 'r2', 'r3']);
    expect(labels.map(l => l.textContent)).toEqual(['r1', 'r2', 'r3']);
    expect(svg.querySelector('[data-run="r2"] title')!.textContent).toContain('run r2');
  });

  it('skips labels evenly when there are many runs, always naming the newest', () => {
    const points = Array.from({ length: 12 }, (_, i) => ({ run_id: `run${String(i).padStart(2, '0')}xyz`, created: `2026-01-${10 + i}`, value: i }));
    const svg = renderLineChart(points, { maxLabels: 4, label: p => p.run_id.slice(0, 5) });
    const labels = Array.from(svg.querySelectorAll('.nbscale-chart-run')).map(l => l.textContent);
    expect(labels.length).toBeLessThanOrEqual(5);
    expect(labels[0]).toBe('run00');
    expect(labels[labels.length - 1]).toBe('run11');
  });
});
