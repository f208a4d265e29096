import { Widget } from '@lumino/widgets';

import { ClusterSection, cpuFraction, memoryFraction, taskStates } from '../clusterSection';
import { bestRuns, MetricsSection } from '../metricsSection';
import { diagnosticLocation, PipelineSection, sortDiagnostics } from '../pipelineSection';
import { RunSection } from '../runSection';
import { PanelState } from '../state';
import { cluster, detail, FakeApi, flush, history, stepRun, summary } from './fixtures';

async function loaded(setup: (api: FakeApi) => void = () => undefined) {
  const api = new FakeApi();
  setup(api);
  const state = new PanelState({ api });
  await state.setPath('iris.ipynb');
  return { api, state };
}

function attach<T extends Widget>(w: T): T {
  Widget.attach(w, document.body);
  return w;
}

afterEach(() => {
  document.body.innerHTML = '';
});

describe('Pipeline section', () => {
  it('asks for a notebook when none is open', () => {
    const state = new PanelState({ api: new FakeApi() });
    const section = attach(new PipelineSection(state));
    expect(section.node.textContent).toContain('Open a notebook');
    section.dispose();
    state.dispose();
  });

  it('draws the DAG with the six steps of iris and says there are no problems', async () => {
    const { state } = await loaded();
    const section = attach(new PipelineSection(state));
    expect(section.node.querySelectorAll('svg.nbscale-dag .nbscale-dag-node')).toHaveLength(6);
    expect(section.node.textContent).toContain('6 steps');
    expect(section.node.textContent).toContain('No problems found');
    section.dispose();
    state.dispose();
  });

  it('colours the DAG with the shown run and selects the step cell on click', async () => {
    const { state } = await loaded(api => {
      api.runList = [summary('r1', 'running')];
      api.details.set('r1', detail('r1', 'running', [stepRun('load', 'succeeded'), stepRun('split', 'running')]));
    });
    const section = attach(new PipelineSection(state));
    const node = (name: string) => section.node.querySelector(`.nbscale-dag-node[data-step="${name}"]`)!;
    expect(node('load').getAttribute('data-status')).toBe('succeeded');
    expect(node('split').getAttribute('data-status')).toBe('running');
    expect(node('evaluate').getAttribute('data-status')).toBe('pending');
    const cells: number[] = [];
    state.cellRequested.connect((_, i) => cells.push(i));
    node('train_rf').dispatchEvent(new MouseEvent('click', { bubbles: true }));
    expect(cells).toEqual([10]);
    section.dispose();
    state.dispose();
  });

  it('lists diagnostics, errors first, and a click selects the cell', async () => {
    const { state } = await loaded(api => {
      api.pipelineModel.diagnostics = [
        { severity: 'warning', code: 'star-import', message: 'from x import * hides names', cell: 1, line: 1, col: 0, hint: null },
        {
          severity: 'error',
          code: 'undefined-name',
          message: "name 'undefined_thing' is not defined before it is used",
          cell: 11,
          line: 4,
          col: 6,
          hint: 'define it in an earlier step'
        }
      ];
    });
    const section = attach(new PipelineSection(state));
    const items = section.node.querySelectorAll('.nbscale-diagnostic');
    expect(items).toHaveLength(2);
    expect(items[0].getAttribute('data-code')).toBe('undefined-name');
    expect(items[0].textContent).toContain('cell 11, line 4');
    expect(section.node.textContent).toContain('1 error');
    const cells: number[] = [];
    state.cellRequested.connect((_, i) => cells.push(i));
    (items[0] as HTMLElement).click();
    expect(cells).toEqual([11]);
    section.dispose();
    state.dispose();
  });

  it('shows a compile failure as text', async () => {
    const { state } = await loaded(api => {
      api.pipeline = async () => {
        throw new Error('<b>400</b> not a notebook');
      };
    });
    const section = attach(new PipelineSection(state));
    expect(section.node.querySelector('b')).toBeNull();
    expect(section.node.textContent).toContain('<b>400</b> not a notebook');
    section.dispose();
    state.dispose();
  });

  it('sorts and locates diagnostics', () => {
    const d = (severity: string, cell: number | null) => ({ severity, code: 'c', message: 'm', cell, line: null, col: null });
    expect(sortDiagnostics([d('info', 1), d('warning', 2), d('error', 5), d('error', 3)]).map(x => [x.severity, x.cell])).toEqual([
      ['error', 3],
      ['error', 5],
      ['warning', 2],
      ['info', 1]
    ]);
    expect(diagnosticLocation(d('error', null))).toBe('notebook');
    expect(diagnosticLocation({ ...d('error', 2), line: 3 })).toBe('cell 2, line 3');
  });
});

describe('Run section', () => {
  it('pre-fills typed inputs from the parameters cell', async () => {
    const { state } = await loaded(api => {
      api.pipelineModel.parameters.push({ name: 'verbose', type: 'bool', default: true });
      api.pipelineModel.parameters.push({ name: 'layers', type: 'list', default: [64, 32] });
    });
    const section = attach(new RunSection(state));
    const input = (name: string) => section.node.querySelector(`input[name="${name}"]`) as HTMLInputElement;
    expect(input('test_size').type).toBe('number');
    expect(input('test_size').step).toBe('any');
    expect(input('test_size').value).toBe('0.25');
    expect(input('seed').step).toBe('1');
    expect(input('seed').value).toBe('42');
    expect(input('verbose').type).toBe('checkbox');
    expect(input('verbose').checked).toBe(true);
    expect(input('layers').value).toBe('[64,32]');
    section.dispose();
    state.dispose();
  });

  it('runs on Dask with the edited parameters', async () => {
    const { state, api } = await loaded();
    const section = attach(new RunSection(state));
    const seed = section.node.querySelector('input[name="seed"]') as HTMLInputElement;
    seed.value = '7';
    seed.dispatchEvent(new Event('input'));
    (section.node.querySelector('button[data-engine="dask"]') as HTMLButtonElement).click();
    await flush();
    expect(api.callsTo('startRun')[0].args[0]).toMatchObject({ engine: 'dask', parameters: { seed: 7 } });
    expect((section.node.querySelector('button[data-engine="dask"]') as HTMLButtonElement).disabled).toBe(true);
    expect((section.node.querySelector('.nbscale-danger') as HTMLButtonElement).disabled).toBe(false);
    section.dispose();
    state.dispose();
  });

  it('refuses to run with an invalid parameter', async () => {
    const { state, api } = await loaded();
    const section = attach(new RunSection(state));
    const seed = section.node.querySelector('input[name="seed"]') as HTMLInputElement;
    seed.value = '4.5';
    seed.dispatchEvent(new Event('input'));
    expect(seed.getAttribute('aria-invalid')).toBe('true');
    expect(section.node.textContent).toContain('seed: expected an integer');
    await section.run('dask');
    expect(api.callsTo('startRun')).toHaveLength(0);
    expect(section.node.querySelector('.nbscale-notice-error')!.textContent).toContain('Fix the parameters first: seed');
    section.dispose();
    state.dispose();
  });

  it('shows each step with status, duration and the progress count', async () => {
    const { state } = await loaded(api => {
      api.runList = [summary('r1', 'running')];
      api.details.set(
        'r1',
        detail('r1', 'running', [
          stepRun('load', 'succeeded', { duration_s: 1.5 }),
          stepRun('split', 'cached', { cached: true }),
          stepRun('train_lr', 'running')
        ])
      );
    });
    const section = attach(new RunSection(state));
    const rows = Array.from(section.node.querySelectorAll('.nbscale-step'));
    expect(rows.map(r => r.getAttribute('data-step'))).toEqual(['load', 'split', 'train_lr', 'train_rf', 'evaluate', 'metrics']);
    expect(rows.map(r => r.getAttribute('data-status'))).toEqual(['succeeded', 'cached', 'running', 'pending', 'pending', 'pending']);
    expect(rows[0].querySelector('.nbscale-duration')!.textContent).toBe('1.50 s');
    expect(section.node.querySelector('.nbscale-progress-count')!.textContent).toBe('2/6 steps');
    state.handleEvent({ type: 'step', run_id: 'r1', step: 'train_lr', status: 'succeeded' });
    expect(section.node.querySelector('[data-step="train_lr"]')!.getAttribute('data-status')).toBe('succeeded');
    expect(section.node.querySelector('.nbscale-progress-count')!.textContent).toBe('3/6 steps');
    section.dispose();
    state.dispose();
  });

  it('shows a failed step traceback as text and jumps to the failing cell', async () => {
    const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
    const { state } = await loaded(api => {
      api.runList = [summary('r1', 'failed')];
      api.details.set(
        'r1',
        detail('r1', 'failed', [
          stepRun('load', 'succeeded'),
          stepRun('split', 'failed', {
            stdout: evil,
            error: {
              cell: 8,
              line: 3,
              ename: 'ValueError',
              evalue: evil,
              traceback: ['\u001b[0;31mTraceback (most recent call last)\u001b[0m', `ValueError: ${evil}`]
            }
          }),
          stepRun('train_lr', 'upstream_failed')
        ])
      );
    });
    const section = attach(new RunSection(state));
    expect(section.node.querySelector('img')).toBeNull();
    expect(section.node.querySelector('script')).toBeNull();
    const tb = section.node.querySelector('.nbscale-traceback')!;
    expect(tb.textContent).toBe(`Traceback (most recent call last)\nValueError: ${evil}`);
    expect(section.node.querySelector('.nbscale-error-title')!.textContent).toContain(`ValueError: ${evil}`);
    expect((window as any).__pwned).toBeUndefined();
    const cells: number[] = [];
    state.cellRequested.connect((_, i) => cells.push(i));
    (section.node.querySelector('.nbscale-error-box .nbscale-link-button') as HTMLElement).click();
    expect(cells).toEqual([8]);
    expect(section.node.querySelector('[data-step="train_lr"] .nbscale-step-status')!.textContent).toBe('upstream failed');
    section.dispose();
    state.dispose();
  });

  it("shows a plain reason without a traceback, and the run's own error", async () => {
    const { state } = await loaded(api => {
      api.runList = [summary('r1', 'failed')];
      api.details.set('r1', {
        ...detail('r1', 'failed', [
          stepRun('evaluate', 'upstream_failed', {
            error: { cell: null, line: null, ename: '', evalue: 'upstream failed: split', traceback: '' }
          })
        ]),
        error: 'step split failed'
      });
    });
    const section = attach(new RunSection(state));
    const row = section.node.querySelector('[data-step="evaluate"]')!;
    expect(row.querySelector('.nbscale-step-reason')!.textContent).toBe('upstream failed: split');
    expect(row.querySelector('.nbscale-error-box')).toBeNull(); // the failing step has the details
    expect(row.querySelector('.nbscale-traceback')).toBeNull();
    expect(section.node.querySelector('.nbscale-run-error')!.textContent).toBe('step split failed');
    section.dispose();
    state.dispose();
  });

  it('cancels the run', async () => {
    const { state, api } = await loaded(api => {
      api.runList = [summary('r1', 'running')];
      api.details.set('r1', detail('r1', 'running', []));
    });
    const section = attach(new RunSection(state));
    await section.cancel();
    expect(api.callsTo('cancelRun')[0].args).toEqual(['iris.ipynb', 'r1']);
    expect(state.run?.status).toBe('cancelled');
    section.dispose();
    state.dispose();
  });

  it('links a submitted KFP run only through http(s)', async () => {
    const { state, api } = await loaded();
    const section = attach(new RunSection(state));
    await section.submitKfp();
    expect((section.node.querySelector('.nbscale-notice a') as HTMLAnchorElement).href).toBe('http://kfp.example/#/runs/details/1');
    api.kfpSubmit = async () => ({ run_url: 'javascript:alert(1)' });
    await section.submitKfp();
    expect(section.node.querySelector('.nbscale-notice a')).toBeNull();
    expect(api.callsTo('kfpSubmit')[0].args[0]).toMatchObject({ path: 'iris.ipynb', experiment: 'Default', parameters: {} });
    section.dispose();
    state.dispose();
  });

  it('reports a server error in one line', async () => {
    const { state, api } = await loaded();
    const section = attach(new RunSection(state));
    api.startRun = async () => {
      throw new Error('409 a run of this notebook is already active');
    };
    await section.run('papermill');
    expect(section.node.querySelector('.nbscale-notice-error')!.textContent).toBe(
      'Could not start the run: 409 a run of this notebook is already active'
    );
    section.dispose();
    state.dispose();
  });
});

describe('Cluster section', () => {
  it('offers to start a cluster when there is none', async () => {
    const { state, api } = await loaded();
    const section = attach(new ClusterSection(state));
    expect(section.node.textContent).toContain('No Dask cluster yet');
    (Array.from(section.node.querySelectorAll('button')).find(b => b.textContent === 'Start LocalCluster') as HTMLButtonElement).click();
    await flush();
    expect(api.callsTo('clusterAction')[0].args[0]).toEqual({ action: 'start' });
    expect(section.node.querySelector('.nbscale-worker-count')!.textContent).toBe('1');
    section.dispose();
    state.dispose();
  });

  it('shows workers, threads, memory and CPU bars, tasks and the dashboard link', async () => {
    const { state } = await loaded(api => (api.clusterModel = cluster(2)));
    const section = attach(new ClusterSection(state));
    expect(section.node.querySelector('.nbscale-worker-count')!.textContent).toBe('2');
    expect(section.node.querySelectorAll('tr[data-worker]')).toHaveLength(2);
    expect(section.node.querySelector('.nbscale-memory .nbscale-bar-label')!.textContent).toBe('400.0 MiB / 8.00 GiB');
    expect(section.node.querySelector('.nbscale-cpu')!.getAttribute('aria-valuenow')).toBe('25');
    expect(Array.from(section.node.querySelectorAll('.nbscale-tasks .nbscale-chip')).map(c => c.textContent)).toEqual([
      'memory 3',
      'processing 1'
    ]);
    expect((section.node.querySelector('.nbscale-dashboard-link') as HTMLAnchorElement).href).toBe('http://127.0.0.1:8787/status');
    section.dispose();
    state.dispose();
  });

  it('scales to N and sets adaptive bounds', async () => {
    const { state, api } = await loaded(api => (api.clusterModel = cluster(1)));
    const section = attach(new ClusterSection(state));
    const n = section.node.querySelector('input[name="n"]') as HTMLInputElement;
    expect(n.value).toBe('1');
    n.value = '2';
    n.dispatchEvent(new Event('input'));
    (section.node.querySelector('.nbscale-scale-button') as HTMLButtonElement).click();
    await flush();
    expect(api.callsTo('clusterAction').map(c => c.args[0])).toEqual([{ action: 'scale', n: 2 }]);
    expect(section.node.querySelector('.nbscale-worker-count')!.textContent).toBe('2');
    (section.node.querySelector('input[name="minimum"]') as HTMLInputElement).value = '1';
    (section.node.querySelector('input[name="maximum"]') as HTMLInputElement).value = '4';
    await section.adapt();
    expect(api.callsTo('clusterAction')[1].args[0]).toEqual({ action: 'adapt', minimum: 1, maximum: 4 });
    (section.node.querySelector('input[name="maximum"]') as HTMLInputElement).value = '0';
    await section.adapt();
    expect(section.node.querySelector('.nbscale-notice-error')!.textContent).toContain('Adaptive bounds');
    section.dispose();
    state.dispose();
  });

  it('keeps what the user typed while samples arrive', async () => {
    const { state } = await loaded(api => (api.clusterModel = cluster(1)));
    const section = attach(new ClusterSection(state));
    const n = section.node.querySelector('input[name="n"]') as HTMLInputElement;
    n.value = '5';
    n.dispatchEvent(new Event('input'));
    state.handleEvent({ type: 'cluster', payload: cluster(1) });
    expect(n.value).toBe('5');
    section.dispose();
    state.dispose();
  });

  it("shows a run's own cluster without scale controls, and offers to start one", async () => {
    const { state } = await loaded(api => (api.clusterModel = { ...cluster(2), kind: 'run' }));
    const section = attach(new ClusterSection(state));
    expect(section.node.querySelector('.nbscale-worker-count')!.textContent).toBe('2');
    expect((section.node.querySelector('.nbscale-cluster-run-own') as HTMLElement).hidden).toBe(false);
    expect((section.node.querySelector('.nbscale-scale-button')!.parentElement as HTMLElement).hidden).toBe(true);
    expect(section.node.textContent).toContain("run's cluster");
    section.dispose();
    state.dispose();
  });

  it('shows why there is no cluster', async () => {
    const { state } = await loaded(api => (api.clusterModel = { status: 'none', error: 'scheduler at tcp://x:8786 did not answer' } as any));
    const section = attach(new ClusterSection(state));
    expect(section.node.querySelector('.nbscale-notice-error')!.textContent).toContain('did not answer');
    section.dispose();
    state.dispose();
  });

  it('computes bar fractions and task states', () => {
    expect(cpuFraction(150, 2)).toBe(0.75);
    expect(cpuFraction(500, 2)).toBe(1);
    expect(cpuFraction(undefined, 2)).toBe(0);
    expect(memoryFraction(1, 4)).toBe(0.25);
    expect(memoryFraction(1, 0)).toBe(0);
    expect(taskStates({ a: 1, b: 5, c: 0 })).toEqual([
      ['b', 5],
      ['a', 1]
    ]);
  });
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

  it('follows the metricDirections setting', () => {
    expect(bestRuns(history(), { acc_lr: 'min' })).toEqual({ acc_lr: 'r1', acc_rf: 'r1' });
  });

  it('says what will come when there are no metrics yet', async () => {
    const { state } = await loaded();
    const section = attach(new MetricsSection(state));
    expect(section.node.textContent).toContain('acc_lr, acc_rf when the run finishes');
    section.dispose();
    state.dispose();
  });
});
