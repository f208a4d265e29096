import { PanelState } from '../state';
import { cluster, detail, FakeApi, flush, history, stepRun, summary } from './fixtures';

function make(api = new FakeApi()) {
  const state = new PanelState({ api }); // no websocket URL: polling only
  const parts: string[] = [];
  state.changed.connect((_, part) => parts.push(part));
  return { api, state, parts };
}

describe('panel state', () => {
  it('loads pipeline, latest run, metrics and cluster for a notebook', async () => {
    const api = new FakeApi();
    api.runList = [summary('r9', 'succeeded')];
    api.details.set('r9', detail('r9', 'succeeded', [stepRun('load', 'succeeded')], { acc_lr: 0.9 }));
    api.metricsHistory = history();
    api.clusterModel = cluster(2);
    const { state, parts } = make(api);
    await state.setPath('iris.ipynb');
    expect(state.pipeline?.steps).toHaveLength(6);
    expect(state.run?.run_id).toBe('r9');
    expect(state.history?.runs).toHaveLength(3);
    expect(state.cluster?.workers).toHaveLength(2);
    expect(state.parameterValues).toEqual({ test_size: 0.25, seed: 42, n_estimators: 50, C: 1.0 });
    expect(parts).toEqual(expect.arrayContaining(['path', 'pipeline', 'run', 'metrics', 'cluster', 'parameters']));
    expect(api.callsTo('runs')[0].args).toEqual(['iris.ipynb', 1]);
    state.dispose();
  });

  it('keeps parameter edits across a recompile, and resets them on demand', async () => {
    const { state, api } = make();
    await state.setPath('iris.ipynb');
    state.setParameter('seed', 7);
    await state.refreshPipeline();
    expect(state.parameterValues.seed).toBe(7);
    expect(state.sentParameters).toEqual({ seed: 7 });
    api.pipelineModel = { ...api.pipelineModel, parameters: api.pipelineModel.parameters.filter(p => p.name !== 'seed') };
    await state.refreshPipeline();
    expect('seed' in state.parameterValues).toBe(false);
    state.resetParameters();
    expect(state.sentParameters).toEqual({});
    state.dispose();
  });

  it('starts a run with only the changed parameters and the configured engine', async () => {
    const { state, api } = make();
    await state.setPath('iris.ipynb');
    state.setParameter('C', 0.5);
    state.updateSettings({ useCache: false });
    await state.startRun('dask');
    expect(api.callsTo('startRun')[0].args[0]).toEqual({
      path: 'iris.ipynb',
      engine: 'dask',
      parameters: { C: 0.5 },
      use_cache: false
    });
    expect(state.run?.run_id).toBe('run-1');
    expect(state.runActive).toBe(true);
    state.dispose();
  });

  it('applies step events at once, then fetches the detail for durations', async () => {
    const { state, api } = make();
    await state.setPath('iris.ipynb');
    await state.startRun();
    await flush();
    api.details.set('run-1', detail('run-1', 'running', [stepRun('load', 'succeeded', { duration_s: 1.25 })]));
    const before = api.callsTo('run').length;
    state.handleEvent({ type: 'step', run_id: 'run-1', step: 'load', status: 'succeeded' });
    expect(state.run?.steps.find(s => s.name === 'load')?.status).toBe('succeeded'); // synchronously
    await flush();
    expect(api.callsTo('run').length).toBe(before + 1);
    expect(state.run?.steps[0].duration_s).toBe(1.25);
    state.dispose();
  });

  it('shows step events that arrive before the answer to its own POST', async () => {
    const { state, api } = make();
    await state.setPath('iris.ipynb');
    let answer: () => void = () => undefined;
    const start = api.startRun.bind(api);
    api.startRun = (body: any) => new Promise(resolve => (answer = () => resolve(start(body))));
    api.details.set('run-1', detail('run-1', 'running', []));
    const started = state.startRun('dask');
    state.handleEvent({ type: 'step', run_id: 'run-1', step: 'load', status: 'running' });
    state.handleEvent({ type: 'run', run_id: 'run-1', status: 'pending' });
    expect(state.run?.run_id).toBe('run-1'); // followed at once, from the event
    expect(state.run?.steps.map(s => [s.name, s.status])).toEqual([['load', 'running']]); // replayed
    state.handleEvent({ type: 'step', run_id: 'run-1', step: 'load', status: 'succeeded' });
    expect(state.run?.steps[0].status).toBe('succeeded');
    answer();
    await started;
    expect(state.run?.steps[0].status).toBe('succeeded'); // the POST's summary does not reset it
    expect(state.run?.engine).toBe('dask');
    state.dispose();
  });

  it('coalesces detail fetches while one is in flight', async () => {
    const { state, api } = make();
    await state.setPath('iris.ipynb');
    await state.startRun();
    await flush();
    const before = api.callsTo('run').length;
    for (const step of ['load', 'split', 'train_lr', 'train_rf']) {
      state.handleEvent({ type: 'step', run_id: 'run-1', step, status: 'succeeded' });
    }
    await flush();
    expect(api.callsTo('run').length - before).toBeLessThanOrEqual(2);
    state.dispose();
  });

  it('refreshes metrics when the run finishes', async () => {
    const { state, api } = make();
    await state.setPath('iris.ipynb');
    await state.startRun();
    await flush();
    api.details.set('run-1', detail('run-1', 'succeeded', [stepRun('load', 'succeeded')], { acc_lr: 0.97 }));
    api.metricsHistory = history();
    const before = api.callsTo('metrics').length;
    state.handleEvent({ type: 'run', run_id: 'run-1', status: 'succeeded' });
    await flush();
    expect(state.runActive).toBe(false);
    expect(state.run?.metrics).toEqual({ acc_lr: 0.97 });
    expect(api.callsTo('metrics').length).toBeGreaterThan(before);
    expect(state.history?.names).toEqual(['acc_lr', 'acc_rf']);
    state.dispose();
  });

  it('takes cluster samples from events', async () => {
    const { state } = make();
    await state.setPath('iris.ipynb');
    state.handleEvent({ type: 'cluster', payload: cluster(3) });
    expect(state.cluster?.workers).toHaveLength(3);
    state.dispose();
  });

  it("drops a run's own cluster when the run ends", async () => {
    const { state, api } = make();
    await state.setPath('iris.ipynb');
    await state.startRun();
    await flush();
    state.handleEvent({ type: 'cluster', payload: { ...cluster(2), kind: 'run' } });
    expect(state.cluster?.status).toBe('running');
    api.clusterModel = { status: 'none' };
    api.details.set('run-1', detail('run-1', 'succeeded', []));
    state.handleEvent({ type: 'run', run_id: 'run-1', status: 'succeeded' });
    await flush();
    expect(state.cluster?.status).toBe('none');
    state.dispose();
  });

  it('follows a run of this notebook started elsewhere when idle', async () => {
    const { state, api } = make();
    await state.setPath('iris.ipynb');
    api.details.set('cli-run', detail('cli-run', 'running', []));
    state.handleEvent({ type: 'run', run_id: 'cli-run', status: 'running' });
    await flush();
    expect(state.run?.run_id).toBe('cli-run');
    state.dispose();
  });

  it('drops answers for a notebook it no longer follows', async () => {
    const { state, api } = make();
    let release: () => void = () => undefined;
    const model = api.pipelineModel;
    api.pipeline = (path: string) =>
      new Promise(resolve => (release = () => resolve({ ...model, name: path }))) as any;
    const first = state.setPath('a.ipynb');
    const releaseA = release;
    api.pipeline = async (path: string) => ({ ...model, name: path });
    await state.setPath('b.ipynb');
    releaseA();
    await first;
    expect(state.path).toBe('b.ipynb');
    expect(state.pipeline?.name).toBe('b.ipynb');
    state.dispose();
  });

  it('shows request errors instead of throwing from background refreshes', async () => {
    const api = new FakeApi();
    api.failWith = new Error('403 Forbidden');
    const { state } = make(api);
    await state.setPath('iris.ipynb');
    expect(state.pipelineError).toBe('403 Forbidden');
    expect(state.clusterError).toBe('403 Forbidden');
    state.dispose();
  });

  it('asks the notebook to select a cell', () => {
    const { state } = make();
    const cells: number[] = [];
    state.cellRequested.connect((_, i) => cells.push(i));
    state.requestCell(4);
    state.requestCell(null);
    state.requestCell(-1);
    expect(cells).toEqual([4]);
    state.dispose();
  });

  it('looks at the cluster a few more times after scaling', async () => {
    jest.useFakeTimers();
    const { state, api } = make();
    api.clusterModel = cluster(1);
    await state.clusterAction({ action: 'scale', n: 2 });
    const before = api.callsTo('cluster').length;
    await jest.advanceTimersByTimeAsync(13000);
    expect(api.callsTo('cluster').length - before).toBeGreaterThanOrEqual(5);
    state.dispose();
    jest.useRealTimers();
  });
});
