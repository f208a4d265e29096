import { MetricsSection } from '../metricsSection';
import { attach, detail, flush, history, loaded, summary } from './fixtures';

afterEach(() => {
  document.body.innerHTML = '';
});

describe('Metrics section', () => {
  it("shows this run's metrics and marks the best across runs", async () => {
    const { state } = await loaded(api => {
      api.runList = [summary('r2', 'succeeded')];
      api.details.set('r2', detail('r2', 'succeeded', [], { acc_lr: 0.97, acc_rf: 0.93 }));
      api.metricsHistory = history();
    });
    const section = attach(new MetricsSection(state));
    const current = section.node.querySelector('.nbscale-metrics-run')!;
    expect(current.querySelector('[data-metric="acc_lr"] td')!.textContent).toBe('0.97 ★');
    expect(current.querySelector('[data-metric="acc_rf"] td')!.textContent).toBe('0.93');
    const rows = section.node.querySelectorAll('.nbscale-metrics-table tbody tr');
    expect(Array.from(rows).map(r => r.getAttribute('data-run'))).toEqual(['r3', 'r2', 'r1']); // newest first
    expect(section.node.querySelectorAll('.nbscale-metrics-table .nbscale-best')).toHaveLength(2);
    expect(section.node.querySelector('tr[data-run="r2"]')!.className).toContain('nbscale-current-run');
    const chart = section.node.querySelector('svg.nbscale-chart')!;
    expect(chart.getAttribute('data-points')).toBe('3');
    expect(chart.querySelector('.nbscale-chart-best')!.getAttribute('data-run')).toBe('r2');
    section.selectMetric('acc_rf');
    expect(section.node.querySelector('svg.nbscale-chart .nbscale-chart-best')!.getAttribute('data-run')).toBe('r1');
    section.dispose();
    state.dispose();
  });

  it('shows an older run when its row is clicked', async () => {
    const { state, api } = await loaded(api => {
      api.metricsHistory = history();
      api.details.set('r1', detail('r1', 'succeeded', [], { acc_lr: 0.9, acc_rf: 0.97 }));
    });
    const section = attach(new MetricsSection(state));
    (section.node.querySelector('tr[data-run="r1"]') as HTMLElement).click();
    await flush();
    expect(api.callsTo('run').map(c => c.args[1])).toContain('r1');
    expect(state.run?.run_id).toBe('r1');
    section.dispose();
    state.dispose();
  });

  it('says a finished run recorded no metrics', async () => {
    const { state } = await loaded(api => {
      api.runList = [summary('r1', 'failed')];
      api.details.set('r1', detail('r1', 'failed', []));
    });
    const section = attach(new MetricsSection(state));
    expect(section.node.textContent).toContain('This run recorded no metrics (failed).');
    section.dispose();
    state.dispose();
  });

  it('says what will come when there are no metrics yet', async () => {
    const { state } = await loaded();
    const section = attach(new MetricsSection(state));
    expect(section.node.textContent).toContain('acc_lr, acc_rf when the run finishes');
    section.dispose();
    state.dispose();
  });

  it('puts the parameters that differ between runs in columns, beside every metric', async () => {
    const { state } = await loaded(api => {
      api.metricsHistory = history();
      api.runList = ['r3', 'r2', 'r1'].map((id, i) => ({ ...summary(id, 'succeeded'), parameters: { seed: 3 - i, C: 1 } }));
    });
    const section = attach(new MetricsSection(state));
    const heads = Array.from(section.node.querySelectorAll('.nbscale-metrics-table thead th')).map(th => th.textContent);
    expect(heads).toEqual(['run', 'seed', 'acc_lr', 'acc_rf']);
    expect(section.node.querySelector('tr[data-run="r1"] .nbscale-param-col')!.textContent).toBe('1');
    expect(section.node.querySelector('.nbscale-table-scroll .nbscale-metrics-table')).not.toBeNull();
    // the column picker hides and shows columns
    const box = section.node.querySelector('.nbscale-column-picker input[data-column="metric:acc_lr"]') as HTMLInputElement;
    box.checked = false;
    box.dispatchEvent(new Event('change'));
    const after = Array.from(section.node.querySelectorAll('.nbscale-metrics-table thead th')).map(th => th.textContent);
    expect(after).toEqual(['run', 'seed', 'acc_rf']);
    expect(section.node.querySelector('.nbscale-column-picker summary')!.textContent).toBe('Columns (2 of 3)');
    section.setColumnShown('metric:acc_lr', true);
    expect(section.node.querySelectorAll('.nbscale-metrics-table thead th')).toHaveLength(4);
    section.dispose();
    state.dispose();
  });

  it('uses the direction the server ships and labels the chart by run', async () => {
    const { state } = await loaded(api => {
      api.metricsHistory = { ...history(), directions: { acc_lr: 'min', acc_rf: 'max' } };
    });
    const section = attach(new MetricsSection(state));
    expect(section.node.textContent).toContain('lower is better');
    expect(section.node.querySelector('svg.nbscale-chart .nbscale-chart-best')!.getAttribute('data-run')).toBe('r1');
    const labels = Array.from(section.node.querySelectorAll('svg.nbscale-chart .nbscale-chart-run')).map(t => t.textContent);
    expect(labels).toEqual(['r1', 'r2', 'r3']);
    section.dispose();
    state.dispose();
  });
});
