/**
 * The panel's model: which notebook it follows, its pipeline, the shown run, the metrics
 * history and the cluster. Sections render from it and call its actions; it talks to the
 * server only through an IApiClient, and hears live events through LiveUpdates.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { EarlyEvents } from './earlyEvents';
import { LiveMode, LiveUpdates, SocketFactory } from './events';
import { changedParameters, ParameterForms } from './parameters';
import { applyEvent, laterStatus, mergeDetail } from './reducers';
import { DEFAULT_SETTINGS, IPanelSettings } from './settings';
import {
  ClusterAction,
  Engine,
  IApiClient,
  IClusterModel,
  IEvent,
  IMetricsHistory,
  IPipelineModel,
  IRunDetail,
  IRunSummary,
  isFinished
} from './wire';

export type Part = 'path' | 'pipeline' | 'run' | 'metrics' | 'cluster' | 'live' | 'settings' | 'parameters' | 'runs';

export interface IPanelStateOptions {
  api: IApiClient;
  /** The websocket URL for a notebook path; omit to use polling only. */
  eventsUrl?: (path: string) => string;
  socketFactory?: SocketFactory;
  settings?: Partial<IPanelSettings>;
}

function message(err: unknown): string {
  if (err instanceof Error) {
    return err.message;
  }
  return String(err);
}

export class PanelState {
  readonly api: IApiClient;
  readonly live: LiveUpdates;

  path: string | null = null;
  pipeline: IPipelineModel | null = null;
  pipelineError: string | null = null;
  pipelineLoading = false;
  run: IRunDetail | null = null;
  runError: string | null = null;
  history: IMetricsHistory | null = null;
  metricsError: string | null = null;
  /** Every run of the notebook, newest first (the run list; any engine, CLI or panel). */
  runs: IRunSummary[] | null = null;
  runsError: string | null = null;
  cluster: IClusterModel | null = null;
  clusterError: string | null = null;
  /** The Run form's values, per notebook: one notebook's edits never reach another's run. */
  readonly parameterForms = new ParameterForms();
  settings: IPanelSettings;

  private _changed = new Signal<this, Part>(this);
  private _cellRequested = new Signal<this, number>(this);
  private _pipelineViewRequested = new Signal<this, string | null>(this);
  private _runFetch: Promise<void> | null = null;
  private _runDirty = false;
  private _clusterFollow: ReturnType<typeof setTimeout>[] = [];
  private _pipelineSeq = 0;
  private _early = new EarlyEvents();

  constructor(options: IPanelStateOptions) {
    this.api = options.api;
    this.settings = { ...DEFAULT_SETTINGS, ...(options.settings ?? {}) };
    const eventsUrl = options.eventsUrl;
    this.live = new LiveUpdates({
      url: () => (this.path && eventsUrl ? eventsUrl(this.path) : null),
      onEvent: e => this.handleEvent(e),
      poll: () => this.poll(),
      active: () => this.runActive || this.cluster?.status === 'running',
      pollInterval: this.settings.pollInterval,
      socketFactory: options.socketFactory,
      onModeChanged: () => this._changed.emit('live')
    });
  }

  /** Emits which part changed. */
  get changed(): ISignal<this, Part> {
    return this._changed;
  }

  /** A section asks the notebook to select a cell (by index in the notebook's cells). */
  get cellRequested(): ISignal<this, number> {
    return this._cellRequested;
  }

  /** A section asks for the main-area pipeline view, showing a step's detail (null: no step). */
  get pipelineViewRequested(): ISignal<this, string | null> {
    return this._pipelineViewRequested;
  }

  requestPipelineView(step: string | null = null): void {
    this._pipelineViewRequested.emit(step);
  }

  get liveMode(): LiveMode {
    return this.live.mode;
  }

  get runActive(): boolean {
    return !!this.run && !isFinished(this.run.status);
  }

  /**
   * Why a run cannot start now, or null when it can: no notebook, a run going on, or compile
   * errors in the pipeline (the first one named, with its 1-based cell number).
   */
  get runBlockedReason(): string | null {
    if (!this.path) {
      return 'Open a notebook to run it.';
    }
    if (this.runActive) {
      return 'A run of this notebook is going on.';
    }
    const errors = (this.pipeline?.diagnostics ?? []).filter(d => d.severity === 'error');
    if (!errors.length) {
      return null;
    }
    const first = errors[0];
    const where = first.cell !== null && first.cell !== undefined ? `cell ${first.cell + 1}: ` : '';
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
    return `Fix the pipeline's errors first: ${where}${first.message}${more}`;
  }

  updateSettings(settings: Partial<IPanelSettings>): void {
    this.settings = { ...this.settings, ...settings };
    this.live.pollInterval = this.settings.pollInterval;
    this._changed.emit('settings');
  }

  requestCell(index: number | null | undefined): void {
    if (index !== null && index !== undefined && index >= 0) {
      this._cellRequested.emit(index);
    }
  }

  /** Follow another notebook (null: none is active). */
  async setPath(path: string | null): Promise<void> {
    if (path === this.path) {
      return;
    }
    this.path = path;
    this.pipeline = null;
    this.pipelineError = null;
    this.run = null;
    this.runError = null;
    this.history = null;
    this.metricsError = null;
    this.runs = null;
    this.runsError = null;
    this._early.clear();
    this._changed.emit('path');
    this.live.restart();
    if (!path) {
      return;
    }
    await Promise.all([this.refreshPipeline(), this.loadLatestRun(), this.refreshMetrics(), this.refreshCluster(), this.refreshRuns()]);
  }

  async refreshPipeline(): Promise<void> {
    const path = this.path;
    if (!path) {
      return;
    }
    const seq = ++this._pipelineSeq;
    this.pipelineLoading = true;
    this._changed.emit('pipeline');
    try {
      const pipeline = await this.api.pipeline(path);
      if (seq !== this._pipelineSeq || path !== this.path) {
        return;
      }
      this.pipeline = pipeline;
      this.pipelineError = null;
      this._resetParameters();
    } catch (err) {
      if (seq !== this._pipelineSeq || path !== this.path) {
        return;
      }
      this.pipelineError = message(err);
    } finally {
      if (seq === this._pipelineSeq) {
        this.pipelineLoading = false;
        this._changed.emit('pipeline');
      }
    }
  }

  /** The followed notebook's form values (its own, never another notebook's). */
  get parameterValues(): Record<string, unknown> {
    return this.parameterForms.values(this.path);
  }

  /** Keep the user's edits for parameters whose default did not change (see ParameterForms.sync). */
  private _resetParameters(): void {
    if (this.path) {
      this.parameterForms.sync(this.path, this.pipeline?.parameters ?? []);
    }
    this._changed.emit('parameters');
  }

  setParameter(name: string, value: unknown): void {
    if (this.path) {
      this.parameterForms.set(this.path, name, value);
    }
  }

  /** Back to the notebook's defaults: one parameter (by name), or all of them. */
  resetParameters(name?: string): void {
    if (this.path) {
      this.parameterForms.reset(this.path, name);
    }
    this._changed.emit('parameters');
  }

  async loadLatestRun(): Promise<void> {
    const path = this.path;
    if (!path) {
      return;
    }
    try {
      const runs = await this.api.runs(path, 1);
      if (path !== this.path) {
        return;
      }
      if (runs.length) {
        await this.showRun(runs[0].run_id);
      }
    } catch (err) {
      if (path === this.path) {
        this.runError = message(err);
        this._changed.emit('run');
      }
    }
  }

  async showRun(runId: string): Promise<void> {
    const path = this.path;
    if (!path) {
      return;
    }
    const detail = await this.api.run(path, runId);
    if (path !== this.path) {
      return;
    }
    this.run = this._early.replay(detail);
    this.runError = null;
    this._changed.emit('run');
  }

  /** Fetch the shown run again; calls made while a fetch is in flight are coalesced. */
  refreshRun(): Promise<void> {
    if (this._runFetch) {
      this._runDirty = true;
      return this._runFetch;
    }
    const fetchOnce = async (): Promise<void> => {
      const path = this.path;
      const run = this.run;
      if (!path || !run) {
        return;
      }
      try {
        const detail = await this.api.run(path, run.run_id);
        if (path !== this.path || this.run?.run_id !== detail.run_id) {
          return;
        }
        const wasActive = this.runActive;
        this.run = mergeDetail(this.run, detail);
        this.runError = null;
        this._changed.emit('run');
        if (wasActive && !this.runActive) {
          void this.refreshMetrics();
          if (this.cluster?.kind === 'run') {
            void this.refreshCluster();
          }
        }
      } catch (err) {
        this.runError = message(err);
        this._changed.emit('run');
      }
    };
    this._runFetch = (async () => {
      try {
        do {
          this._runDirty = false;
          await fetchOnce();
        } while (this._runDirty);
      } finally {
        this._runFetch = null;
      }
    })();
    return this._runFetch;
  }

  async refreshMetrics(): Promise<void> {
    const path = this.path;
    if (!path) {
      return;
    }
    try {
      const history = await this.api.metrics(path);
      if (path !== this.path) {
        return;
      }
      this.history = history;
      this.metricsError = null;
    } catch (err) {
      this.metricsError = message(err);
    }
    this._changed.emit('metrics');
  }

  async refreshCluster(): Promise<void> {
    try {
      this.cluster = await this.api.cluster();
      this.clusterError = null;
    } catch (err) {
      this.clusterError = message(err);
    }
    this._changed.emit('cluster');
  }

  async poll(): Promise<void> {
    const tasks: Promise<void>[] = [];
    if (this.runActive) {
      tasks.push(this.refreshRun());
    }
    if (this.cluster?.status === 'running') {
      tasks.push(this.refreshCluster());
    }
    await Promise.all(tasks);
  }

  /** The run list: how many runs it asks for. */
  static readonly RUNS_LISTED = 200;

  async refreshRuns(): Promise<void> {
    const path = this.path;
    if (!path) {
      return;
    }
    try {
      const runs = await this.api.runs(path, PanelState.RUNS_LISTED);
      if (path !== this.path) {
        return;
      }
      this.runs = runs;
      this.runsError = null;
    } catch (err) {
      if (path !== this.path) {
        return;
      }
      this.runsError = message(err);
    }
    this._changed.emit('runs');
  }

  /** A run event keeps the run list current: a new run or a finished one is fetched again. */
  private _noteRunInList(event: IEvent): void {
    if (event.type !== 'run' || !event.run_id || !event.status || !this.runs) {
      return;
    }
    const listed = this.runs.find(r => r.run_id === event.run_id);
    if (listed && listed.status !== event.status) {
      this.runs = this.runs.map(r => (r.run_id === event.run_id ? { ...r, status: event.status as string } : r));
      this._changed.emit('runs');
    }
    if (!listed || isFinished(event.status)) {
      void this.refreshRuns(); // its parameters, times (and a run this list has not seen)
    }
  }

  handleEvent(event: IEvent): void {
    this._noteRunInList(event);
    if (event.type === 'cluster') {
      const model = event.payload as IClusterModel | undefined;
      if (model && typeof model === 'object' && typeof model.status === 'string') {
        this.cluster = model;
        this.clusterError = null;
        this._changed.emit('cluster');
      } else {
        void this.refreshCluster();
      }
      return;
    }
    if (!event.run_id) {
      return;
    }
    if (this.run && event.run_id === this.run.run_id) {
      const wasActive = this.runActive;
      const next = applyEvent(this.run, event);
      if (next !== this.run) {
        this.run = next;
        this._changed.emit('run');
      }
      // durations, logs and tracebacks come with the detail
      if (event.type === 'step' && isFinished(event.status)) {
        void this.refreshRun();
      }
      if (event.type === 'run' && (isFinished(event.status) || wasActive !== this.runActive)) {
        void this.refreshRun().then(() => this.refreshMetrics());
        // a run's own cluster ends with it: the last sample must not stay on screen
        if (this.cluster?.kind === 'run') {
          void this.refreshCluster();
        }
      }
      return;
    }
    // A run of this notebook that the panel does not show yet: keep its events, and follow it
    // at once when idle (started here or in another tab). Its events then apply without waiting
    // for the POST's answer or a fetch.
    this._early.keep(event);
    if (event.type === 'run' && !this.runActive && (event.status === 'pending' || event.status === 'running')) {
      this._follow(event.run_id, event.status);
    }
  }

  /** Show a run known only from an event, then fill it in from the server. */
  private _follow(runId: string, status: string): void {
    this.run = this._early.replay({
      run_id: runId,
      notebook: this.path ?? '',
      engine: '',
      status,
      created: new Date().toISOString(),
      started: null,
      finished: null,
      parameters: {},
      steps: [],
      metrics: {}
    });
    this.runError = null;
    this._changed.emit('run');
    void this.refreshRun();
  }

  async startRun(engine?: Engine): Promise<void> {
    const path = this.path;
    if (!path) {
      throw new Error('Open a notebook first.');
    }
    const summary = await this.api.startRun({
      path,
      engine: engine ?? this.settings.defaultEngine,
      parameters: this._sentParameters(),
      use_cache: this.settings.useCache
    });
    // the run's events may have come first (the panel then follows it already)
    this.run =
      this.run?.run_id === summary.run_id
        ? mergeDetail(this.run, { ...this.run, ...summary })
        : this._early.replay({ ...summary, steps: [], metrics: {} });
    this.runError = null;
    this._changed.emit('run');
    void this.refreshRun();
  }

  private _sentParameters(): Record<string, unknown> {
    return changedParameters(this.pipeline?.parameters ?? [], this.parameterValues);
  }

  /** The parameters a run would get now (only those that differ from the notebook's). */
  get sentParameters(): Record<string, unknown> {
    return this._sentParameters();
  }

  async cancelRun(): Promise<void> {
    if (!this.path || !this.run) {
      return;
    }
    const summary = await this.api.cancelRun(this.path, this.run.run_id);
    if (this.run && summary.run_id === this.run.run_id && laterStatus(this.run.status, summary.status) !== this.run.status) {
      this.run = { ...this.run, status: summary.status };
      this._changed.emit('run');
    }
    void this.refreshRun();
  }

  async clusterAction(action: ClusterAction): Promise<void> {
    try {
      this.cluster = await this.api.clusterAction(action);
      this.clusterError = null;
    } catch (err) {
      this.clusterError = message(err);
      this._changed.emit('cluster');
      throw err;
    }
    this._changed.emit('cluster');
    this._followCluster();
  }

  /** Workers come and go a while after scale/adapt: look again a few times. */
  private _followCluster(): void {
    for (const t of this._clusterFollow) {
      clearTimeout(t);
    }
    this._clusterFollow = [500, 1000, 2000, 3000, 5000, 8000, 12000].map(ms =>
      setTimeout(() => void this.refreshCluster(), ms)
    );
  }

  async exportKfp(): Promise<string> {
    if (!this.path) {
      throw new Error('Open a notebook first.');
    }
    return this.api.kfpYaml(this.path);
  }

  async submitKfp(runName?: string): Promise<string> {
    if (!this.path) {
      throw new Error('Open a notebook first.');
    }
    const name = runName ?? `${this.pipeline?.name ?? 'nbscale'}-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    const result = await this.api.kfpSubmit({
      path: this.path,
      parameters: this._sentParameters(),
      experiment: this.settings.kfpExperiment,
      run_name: name
    });
    return result.run_url;
  }

  dispose(): void {
    for (const t of this._clusterFollow) {
      clearTimeout(t);
    }
    this.live.dispose();
    Signal.clearData(this);
  }
}
