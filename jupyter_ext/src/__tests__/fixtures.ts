/**
 * Models as the server sends them (docs/api.md), for examples/iris.ipynb; a fake server; and
 * helpers to load a PanelState and attach widgets.
 */
import { Widget } from '@lumino/widgets';

import { PanelState } from '../state';
import {
  IApiClient,
  IClusterModel,
  IMetricsHistory,
  IPipelineModel,
  IRunDetail,
  IRunSummary,
  IStepRun
} from '../wire';

export function irisPipeline(): IPipelineModel {
  const step = (name: string, cells: number[], inputs: string[], outputs: string[]) => ({
    name,
    cells,
    inputs,
    outputs,
    resources: {},
    hash: `sha256:${name}`
  });
  return {
    notebook: 'iris.ipynb',
    name: 'iris',
    steps: [
      step('load', [4], [], ['df']),
      step('split', [8], ['df'], ['X_train', 'X_test', 'y_train', 'y_test']),
      step('train_lr', [9], ['X_train', 'y_train'], ['lr']),
      step('train_rf', [10], ['X_train', 'y_train'], ['rf']),
      step('evaluate', [11], ['X_test', 'y_test', 'lr', 'rf'], ['acc_lr', 'acc_rf']),
      step('metrics', [12], ['acc_lr', 'acc_rf'], [])
    ],
    edges: [
      { from: 'load', to: 'split', names: ['df'] },
      { from: 'split', to: 'train_lr', names: ['X_train', 'y_train'] },
      { from: 'split', to: 'train_rf', names: ['X_train', 'y_train'] },
      { from: 'split', to: 'evaluate', names: ['X_test', 'y_test'] },
      { from: 'train_lr', to: 'evaluate', names: ['lr'] },
      { from: 'train_rf', to: 'evaluate', names: ['rf'] },
      { from: 'evaluate', to: 'metrics', names: ['acc_lr', 'acc_rf'] }
    ],
    parameters: [
      { name: 'test_size', type: 'float', default: 0.25 },
      { name: 'seed', type: 'int', default: 42 },
      { name: 'n_estimators', type: 'int', default: 50 },
      { name: 'C', type: 'float', default: 1.0 }
    ],
    diagnostics: [],
    metrics: { step: 'metrics', names: ['acc_lr', 'acc_rf'] }
  };
}

export function summary(runId: string, status = 'running', created = '2026-11-28T10:00:00.000000+00:00'): IRunSummary {
  return {
    run_id: runId,
    notebook: 'iris.ipynb',
    engine: 'dask',
    status,
    created,
    started: created,
    finished: null,
    parameters: {}
  };
}

export function stepRun(name: string, status: string, extra: Partial<IStepRun> = {}): IStepRun {
  return {
    name,
    status,
    duration_s: status === 'succeeded' ? 0.5 : null,
    cached: false,
    attempts: status === 'pending' ? 0 : 1,
    started: null,
    finished: null,
    stdout: null,
    stderr: null,
    error: null,
    ...extra
  };
}

export function detail(runId: string, status: string, steps: IStepRun[], metrics: Record<string, number> = {}): IRunDetail {
  return { ...summary(runId, status), steps, metrics };
}

export function history(): IMetricsHistory {
  return {
    names: ['acc_lr', 'acc_rf'],
    runs: [
      // oldest first, as the server sends it
      { run_id: 'r1', created: '2026-11-28T10:00:00+00:00', status: 'succeeded', metrics: { acc_lr: 0.9, acc_rf: 0.97 } },
      { run_id: 'r2', created: '2026-11-28T11:00:00+00:00', status: 'succeeded', metrics: { acc_lr: 0.97, acc_rf: 0.93 } },
      { run_id: 'r3', created: '2026-11-28T12:00:00+00:00', status: 'succeeded', metrics: { acc_lr: 0.95, acc_rf: 0.97 } }
    ]
  };
}

export function cluster(workers = 1): IClusterModel {
  return {
    status: 'running',
    kind: 'LocalCluster',
    scheduler_address: 'tcp://127.0.0.1:40000',
    dashboard_link: 'http://127.0.0.1:8787/status',
    workers: Array.from({ length: workers }, (_, i) => ({
      address: `tcp://127.0.0.1:4100${i}`,
      name: String(i),
      nthreads: 2,
      memory_used: 200 * 2 ** 20,
      memory_limit: 4 * 2 ** 30,
      cpu: 50
    })),
    threads: 2 * workers,
    memory_used: 200 * 2 ** 20 * workers,
    memory_limit: 4 * 2 ** 30 * workers,
    cpu: 50 * workers,
    tasks: { memory: 3, processing: 1, released: 0 },
    adaptive: null
  };
}

/** A fake server: records calls, answers from fields the test sets. */
export class FakeApi implements IApiClient {
  calls: { method: string; args: any[] }[] = [];
  pipelineModel: IPipelineModel = irisPipeline();
  runList: IRunSummary[] = [];
  details = new Map<string, IRunDetail>();
  metricsHistory: IMetricsHistory = { names: [], runs: [] };
  clusterModel: IClusterModel = { status: 'none' };
  nextRunId = 'run-1';
  failWith: Error | null = null;

  private record(method: string, ...args: any[]) {
    this.calls.push({ method, args });
    if (this.failWith) {
      throw this.failWith;
    }
  }

  callsTo(method: string) {
    return this.calls.filter(c => c.method === method);
  }

  async pipeline(path: string) {
    this.record('pipeline', path);
    return this.pipelineModel;
  }
  async runs(path: string, limit?: number) {
    this.record('runs', path, limit);
    return this.runList;
  }
  async startRun(body: any) {
    this.record('startRun', body);
    const s = summary(this.nextRunId, 'pending');
    this.details.set(s.run_id, { ...s, steps: [], metrics: {} });
    return s;
  }
  async run(path: string, runId: string) {
    this.record('run', path, runId);
    const d = this.details.get(runId);
    if (!d) {
      throw new Error(`no run ${runId}`);
    }
    return JSON.parse(JSON.stringify(d));
  }
  async cancelRun(path: string, runId: string) {
    this.record('cancelRun', path, runId);
    return summary(runId, 'cancelled');
  }
  async metrics(path: string) {
    this.record('metrics', path);
    return this.metricsHistory;
  }
  async cluster() {
    this.record('cluster');
    return this.clusterModel;
  }
  async clusterAction(action: any) {
    this.record('clusterAction', action);
    if (action.action === 'scale') {
      this.clusterModel = cluster(action.n);
    } else if (action.action === 'start') {
      this.clusterModel = cluster(1);
    } else if (action.action === 'close') {
      this.clusterModel = { status: 'none' };
    }
    return this.clusterModel;
  }
  async kfpYaml(path: string) {
    this.record('kfpYaml', path);
    return 'pipelineSpec: {}\n';
  }
  async kfpSubmit(body: any) {
    this.record('kfpSubmit', body);
    return { run_url: 'http://kfp.example/#/runs/details/1' };
  }
}

/** Let pending promise callbacks run. */
export async function flush(times = 5): Promise<void> {
  for (let i = 0; i < times; i++) {
    await Promise.resolve();
    await new Promise(r => setTimeout(r, 0));
  }
}

/** A PanelState following iris.ipynb, on a fake server the test may set up first. */
export async function loaded(setup: (api: FakeApi) => void = () => undefined): Promise<{ api: FakeApi; state: PanelState }> {
  const api = new FakeApi();
  setup(api);
  const state = new PanelState({ api });
  await state.setPath('iris.ipynb');
  return { api, state };
}

/** Attach a widget to the document (the test's afterEach empties the body). */
export function attach<T extends Widget>(w: T): T {
  Widget.attach(w, document.body);
  return w;
}
