import { MetricsSection } from '../metricsSection';
import { RunSection } from '../runSection';
import { formatCost, regressionOf, renderCost, renderRegressions } from '../runInsights';
import { IRunDetail } from '../wire';
import { attach, detail, loaded, stepRun, summary } from './fixtures';

afterEach(() => {
  document.body.innerHTML = '';
});

function withInsights(extra: Record<string, unknown>): IRunDetail {
  return { ...detail('r2', 'succeeded', [], { accuracy: 0.7, loss: 0.3 }), ...extra } as IRunDetail;
}

const hostile = '<img src=x onerror=alert(1)>\u202e';

function report() {
  const reference = { run_id: 'r1', created: '2026-01-01', value: 0.9, delta: -0.2, relative: -0.22, regressed: true, better: false };
  return {
    run_id: 'r2',
    regressed: ['accuracy', hostile],
    metrics: [
      { name: 'accuracy', value: 0.7, direction: 'max', status: 'regressed', regressed: true, reason: '-22.2% against the previous run r1 (0.9)', previous: reference, best: reference },
      { name: 'loss', value: 0.3, direction: 'min', status: 'ok', regressed: false, reason: 'within the threshold', previous: null, best: null },
      { name: hostile, value: null, direction: 'max', status: 'regressed', regressed: true, reason: 'is not a finite number (nan)', previous: null, best: null }
    ]
  };
}

function cost(cached: number) {
  return {
    run_id: 'r2'.padEnd(32, '0'),
    prices: { core_hour: 0.05, gb_hour: 0.005, unit: 'units' },
    steps: [],
    total: { wall_s: 1.5, cpu_s: 1.25, peak_rss_bytes: 80 * 1024 * 1024, cost: 0.0000174, cached, saved_s: cached ? 0.3 : null, saved_cost: cached ? 0.0000015 : null }
  };
}

describe('run insights', () => {
  it('lists the regressed metrics with their reasons, names as text', () => {
    const run = withInsights({ regressions: report() });
    const node = renderRegressions(run)!;
    expect(node.querySelector('.nbscale-error')!.textContent).toBe('⚠ 2 metrics regressed');
    const items = Array.from(node.querySelectorAll('li'));
    expect(items.map(li => li.getAttribute('data-metric'))).toEqual(['accuracy', hostile]);
    expect(items[0].textContent).toBe('accuracy = 0.7: -22.2% against the previous run r1 (0.9)');
    expect(items[1].textContent).toContain(hostile);
    expect(node.querySelector('img')).toBeNull();
    expect(regressionOf(run, 'accuracy')!.previous!.run_id).toBe('r1');
    expect(regressionOf(run, 'loss')).toBeNull();
  });

  it('shows nothing for a run without regressions or still running', () => {
    expect(renderRegressions(withInsights({}))).toBeNull();
    expect(renderRegressions(withInsights({ regressions: { run_id: 'r2', regressed: [], metrics: [] } }))).toBeNull();
    expect(renderRegressions(null)).toBeNull();
    expect(renderCost(withInsights({}))).toBeNull();
  });

  it('shows the cost and what the cache saved in one line', () => {
    const plain = renderCost(withInsights({ cost: cost(0) }))!;
    expect(plain.textContent).toBe('cost 0.0000174 units · cpu 1.25 s · peak memory 80.0 MiB');
    const cached = renderCost(withInsights({ cost: cost(2) }))!;
    expect(cached.textContent).toContain('2 cached steps saved 300 ms (0.0000015 units)');
    expect(cached.title).toContain('0.05 per CPU-hour');
  });

  it('says why when a project setting is bad', () => {
    const node = renderCost(withInsights({ insights_error: 'pyproject.toml [tool.nbscale.cost] core_hour must be a number ≥ 0' }))!;
    expect(node.textContent).toContain('core_hour must be a number');
  });

  it('formats costs', () => {
    expect(formatCost(0)).toBe('0 units');
    expect(formatCost(1.23456)).toBe('1.23 units');
    expect(formatCost(null)).toBe('–');
    expect(formatCost(Infinity)).toBe('–');
  });
});

describe('the sections show the insights', () => {
  it("marks the run's regressed metrics in the Metrics section and says why", async () => {
    const { state } = await loaded(api => {
      api.runList = [summary('r2', 'succeeded')];
      api.details.set('r2', withInsights({ regressions: report() }));
    });
    const section = attach(new MetricsSection(state));
    const row = section.node.querySelector('.nbscale-metrics-run tr[data-metric="accuracy"]')!;
    expect(row.className).toBe('nbscale-regressed');
    expect(row.getAttribute('title')).toBe('regressed: -22.2% against the previous run r1 (0.9)');
    expect(row.querySelector('th')!.textContent).toBe('accuracy ▼');
    expect(section.node.querySelector('tr[data-metric="loss"]')!.className).toBe('');
    expect(section.node.querySelector('.nbscale-regressions .nbscale-error')!.textContent).toBe('⚠ 2 metrics regressed');
    section.dispose();
    state.dispose();
  });

  it('shows the cost under the steps in the Run section', async () => {
    const { state } = await loaded(api => {
      api.runList = [summary('r2', 'succeeded')];
      api.details.set('r2', { ...detail('r2', 'succeeded', [stepRun('load', 'cached')]), cost: cost(1) } as IRunDetail);
    });
    const section = attach(new RunSection(state));
    expect(section.node.querySelector('.nbscale-cost')!.textContent).toContain('1 cached step saved 300 ms');
    section.dispose();
    state.dispose();
  });
});
