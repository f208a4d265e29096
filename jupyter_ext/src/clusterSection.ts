/**
 * Cluster: the Dask cluster the runs use: workers, threads, memory and CPU bars, tasks by
 * state; scale to N, adaptive min/max, close; the Dask dashboard's link (through the Jupyter
 * server when it can be) and buttons that open its plots as main-area panes. The controls are
 * built once and keep what the user types while live samples re-render the figures. A running
 * pipeline's own cluster (kind 'run', shown while the server has none) lives in the run's process
 * and ends with it: it gets no Scale/Adapt/Close controls at all, only the offer to start one.
 */
import { PageConfig } from '@jupyterlab/coreutils';
import { ISignal, Signal } from '@lumino/signaling';

import { DASHBOARD_PLOTS, dashboardLinks, IPlotRequest, plotUrl } from './dashboardPane';
import { bar, h, replace } from './dom';
import { formatBytes } from './format';
import { Section } from './section';
import { PanelState, Part } from './state';
import { IClusterModel } from './wire';

/** CPU as a fraction of what the cluster's threads can do (cpu is a summed percentage). */
export function cpuFraction(cpu: number | undefined, threads: number | undefined): number {
  if (!cpu || !isFinite(cpu)) {
    return 0;
  }
  return Math.min(1, cpu / (100 * Math.max(1, threads ?? 1)));
}

export function memoryFraction(used: number | undefined, limit: number | undefined): number {
  if (!used || !limit) {
    return 0;
  }
  return Math.min(1, used / limit);
}

/** Tasks by state, biggest first, zero counts left out. */
export function taskStates(tasks: Record<string, number> | undefined): [string, number][] {
  return Object.entries(tasks ?? {})
    .filter(([, n]) => typeof n === 'number' && n > 0)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

function numberInput(name: string, label: string, min = 0): HTMLInputElement {
  return h('input', { type: 'number', min, step: 1, name, 'aria-label': label, className: 'nbscale-small-input' });
}

export class ClusterSection extends Section {
  private readonly _none: HTMLElement;
  private readonly _running: HTMLElement;
  private readonly _stats: HTMLElement;
  private readonly _scaleN: HTMLInputElement;
  private readonly _adaptMin: HTMLInputElement;
  private readonly _adaptMax: HTMLInputElement;
  private readonly _address: HTMLInputElement;
  private readonly _runOwn: HTMLElement;
  private readonly _controls: HTMLElement[];
  private readonly _actions: HTMLElement;
  private readonly _dashboard: HTMLElement;
  private readonly _plotRequested = new Signal<this, IPlotRequest>(this);
  private _shownStatus: string | null = null;
  private _shownOwn: boolean | null = null;
  private _shownDashboard = '';

  constructor(state: PanelState) {
    super(state, 'Cluster', ['cluster']);
    const button = (label: string, title: string, onClick: () => void, className = '') => {
      const b = h('button', { className: `nbscale-button ${className}`.trim(), type: 'button', title }, label);
      b.addEventListener('click', onClick);
      return b;
    };
    this._address = h('input', {
      type: 'text',
      name: 'address',
      placeholder: 'tcp://scheduler:8786',
      'aria-label': 'Scheduler address',
      className: 'nbscale-grow'
    });
    this._none = h(
      'div',
      { className: 'nbscale-cluster-none' },
      h('p', { className: 'nbscale-muted' }, 'No Dask cluster yet: runs on Dask start a LocalCluster, or start one now.'),
      h(
        'div',
        { className: 'nbscale-buttons' },
        button('Start LocalCluster', 'Start the embedded Dask LocalCluster', () =>
          void this.act('Could not start the cluster', () => this.state.clusterAction({ action: 'start' }))
        )
      ),
      h(
        'div',
        { className: 'nbscale-row' },
        this._address,
        button('Connect', 'Use an existing Dask scheduler', () => {
          const address = this._address.value.trim();
          if (!address) {
            this.notice('Enter a scheduler address first.', 'error');
            return;
          }
          void this.act('Could not connect', () => this.state.clusterAction({ action: 'connect', address }));
        })
      )
    );
    this._scaleN = numberInput('n', 'Number of workers');
    this._adaptMin = numberInput('minimum', 'Adaptive minimum');
    this._adaptMax = numberInput('maximum', 'Adaptive maximum', 1);
    const scale = button('Scale', 'Scale the cluster to this many workers', () => void this.scale());
    scale.classList.add('nbscale-scale-button');
    const adapt = button('Adapt', 'Let Dask scale between these bounds', () => void this.adapt());
    this._stats = h('div', { className: 'nbscale-cluster-stats' });
    this._controls = [
      h('div', { className: 'nbscale-row' }, h('label', {}, 'Scale to '), this._scaleN, h('span', {}, ' workers'), scale),
      h('div', { className: 'nbscale-row' }, h('label', {}, 'Adaptive '), this._adaptMin, h('span', {}, '–'), this._adaptMax, adapt),
      h(
        'div',
        { className: 'nbscale-buttons' },
        button(
          'Close cluster',
          'Close the cluster and its workers',
          () => void this.act('Could not close the cluster', () => this.state.clusterAction({ action: 'close' })),
          'nbscale-danger'
        )
      )
    ];
    this._actions = h('div', { className: 'nbscale-cluster-actions' });
    this._dashboard = h('div', { className: 'nbscale-dashboard' });
    this._running = h('div', { className: 'nbscale-cluster-running' }, this._stats, this._dashboard, this._actions);
    for (const input of [this._scaleN, this._adaptMin, this._adaptMax]) {
      input.addEventListener('input', () => (input.dataset.dirty = '1'));
    }
    this._scaleN.addEventListener('keydown', ev => {
      if (ev.key === 'Enter') {
        void this.scale();
      }
    });
    this._runOwn = h(
      'div',
      { className: 'nbscale-cluster-run-own' },
      h(
        'p',
        { className: 'nbscale-muted' },
        "This is the running pipeline's own cluster; it closes when the run ends. Start a cluster to keep one for the next runs and scale it."
      ),
      h(
        'div',
        { className: 'nbscale-buttons' },
        button('Start LocalCluster', 'Start the embedded Dask LocalCluster', () =>
          void this.act('Could not start the cluster', () => this.state.clusterAction({ action: 'start' }))
        )
      )
    );
    this.body.append(this._none, this._running);
    this.refresh();
  }

  /** A dashboard plot button was clicked: open it as a main-area pane (index.ts). */
  get plotRequested(): ISignal<this, IPlotRequest> {
    return this._plotRequested;
  }

  async scale(n?: number): Promise<void> {
    const value = n ?? parseInt(this._scaleN.value, 10);
    if (!Number.isInteger(value) || value < 0) {
      this.notice('Scale to a whole number of workers (0 or more).', 'error');
      return;
    }
    delete this._scaleN.dataset.dirty;
    await this.act('Could not scale', () => this.state.clusterAction({ action: 'scale', n: value }));
  }

  async adapt(): Promise<void> {
    const minimum = parseInt(this._adaptMin.value, 10);
    const maximum = parseInt(this._adaptMax.value, 10);
    if (!Number.isInteger(minimum) || !Number.isInteger(maximum) || minimum < 0 || maximum < Math.max(1, minimum)) {
      this.notice('Adaptive bounds: 0 ≤ minimum ≤ maximum, maximum ≥ 1.', 'error');
      return;
    }
    delete this._adaptMin.dataset.dirty;
    delete this._adaptMax.dataset.dirty;
    await this.act('Could not set adaptive scaling', () => this.state.clusterAction({ action: 'adapt', minimum, maximum }));
  }

  protected render(_part: Part): void {
    const cluster = this.state.cluster;
    const running = cluster?.status === 'running';
    this._none.hidden = running;
    this._running.hidden = !running;
    if (this.state.clusterError) {
      this.notice(this.state.clusterError, 'error');
    }
    if (!running || !cluster) {
      this.setExtra(cluster ? 'none' : '');
      this._shownStatus = cluster?.status ?? null;
      const error = (cluster as { error?: string } | null)?.error;
      if (error && !this.state.clusterError) {
        this.notice(error, 'error');
      }
      return;
    }
    this._showActions(cluster.kind === 'run');
    this._renderDashboard(cluster);
    const workers = cluster.workers ?? [];
    this.setExtra(`${workers.length} worker${workers.length === 1 ? '' : 's'}`);
    this._fillControls(cluster, this._shownStatus !== 'running');
    this._shownStatus = cluster.status;
    this._renderStats(cluster);
  }

  /** Scale/Adapt/Close for a cluster the server has; for a run's own one, not there at all (a
   * `hidden` attribute alone loses to the rows' `display: flex`). */
  private _showActions(own: boolean): void {
    if (own !== this._shownOwn) {
      this._shownOwn = own;
      replace(this._actions, ...(own ? [this._runOwn] : this._controls));
    }
  }

  /** The dashboard's link, why it is missing or direct, and the plot buttons; rebuilt only when
   * they change, so a sample never swaps a button under the pointer. */
  private _renderDashboard(cluster: IClusterModel): void {
    const links = dashboardLinks(cluster, PageConfig.getBaseUrl());
    const key = JSON.stringify(links);
    if (key === this._shownDashboard) {
      return;
    }
    this._shownDashboard = key;
    const root = links.root;
    const plots = root
      ? DASHBOARD_PLOTS.map(plot => {
          const b = h(
            'button',
            { className: 'nbscale-button nbscale-plot-button', type: 'button', 'data-plot': plot.route, title: `Open the Dask ${plot.label} plot in a tab` },
            plot.label
          );
          b.addEventListener('click', () => this._plotRequested.emit({ plot, url: plotUrl(root, plot) }));
          return b;
        })
      : [];
    replace(
      this._dashboard,
      links.href
        ? h(
            'a',
            {
              href: links.href,
              target: '_blank',
              rel: 'noopener noreferrer',
              className: 'nbscale-dashboard-link',
              'data-proxied': links.proxied ? '1' : '0'
            },
            'Dashboard ↗'
          )
        : null,
      links.note ? h('span', { className: 'nbscale-muted nbscale-dashboard-note' }, links.note) : null,
      plots.length ? h('div', { className: 'nbscale-buttons nbscale-plot-buttons', role: 'group', 'aria-label': 'Dask dashboard plots' }, ...plots) : null
    );
  }

  /** Put the cluster's values in the inputs the user has not touched (and is not typing in). */
  private _fillControls(cluster: IClusterModel, force: boolean): void {
    const set = (input: HTMLInputElement, value: number | undefined) => {
      if (value === undefined) {
        return;
      }
      if (force || (!input.dataset.dirty && document.activeElement !== input)) {
        input.value = String(value);
        delete input.dataset.dirty;
      }
    };
    const n = cluster.workers?.length ?? 0;
    set(this._scaleN, n);
    set(this._adaptMin, cluster.adaptive?.minimum ?? (force ? n : undefined));
    set(this._adaptMax, cluster.adaptive?.maximum ?? (force ? Math.max(n, 1) * 2 : undefined));
  }

  private _renderStats(cluster: IClusterModel): void {
    const workers = cluster.workers ?? [];
    const threads = cluster.threads ?? workers.reduce((t, w) => t + (w.nthreads || 0), 0);
    const tasks = taskStates(cluster.tasks);
    const table = h(
      'table',
      { className: 'nbscale-table nbscale-workers', 'aria-label': 'Workers' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          // the columns shrink with the sidebar: a header that ellipsizes keeps its name as a title
          ...[
            ['worker', 'Worker (its address in the title)'],
            ['threads', 'Threads'],
            ['memory', 'Memory used'],
            ['CPU', 'CPU use']
          ].map(([text, title]) => h('th', { title, scope: 'col' }, text))
        )
      )
    );
    const tbody = h('tbody');
    for (const w of workers) {
      tbody.appendChild(
        h(
          'tr',
          { 'data-worker': w.address },
          h('td', { className: 'nbscale-ellipsis', title: w.address }, String(w.name ?? w.address)),
          h('td', { className: 'nbscale-num' }, w.nthreads),
          h('td', {}, bar(memoryFraction(w.memory_used, w.memory_limit), formatBytes(w.memory_used), 'nbscale-bar-small', `worker ${w.name ?? w.address} memory`)),
          h('td', {}, bar(cpuFraction(w.cpu, w.nthreads), `${Math.round(w.cpu ?? 0)}%`, 'nbscale-bar-small', `worker ${w.name ?? w.address} CPU`))
        )
      );
    }
    table.appendChild(tbody);
    replace(
      this._stats,
      h(
        'div',
        { className: 'nbscale-cluster-title' },
        h('strong', {}, cluster.kind === 'run' ? "run's cluster" : cluster.kind ?? 'cluster'),
        h('span', { className: 'nbscale-muted nbscale-ellipsis', title: cluster.scheduler_address ?? '' }, ` ${cluster.scheduler_address ?? ''}`)
      ),
      h(
        'dl',
        { className: 'nbscale-figures' },
        h('dt', {}, 'Workers'),
        h('dd', { className: 'nbscale-worker-count', 'data-count': workers.length }, workers.length),
        h('dt', {}, 'Threads'),
        h('dd', {}, threads),
        h('dt', {}, 'Adaptive'),
        h('dd', {}, cluster.adaptive ? `${cluster.adaptive.minimum}–${cluster.adaptive.maximum}` : 'off')
      ),
      h(
        'div',
        { className: 'nbscale-bar-row' },
        h('span', { className: 'nbscale-bar-name' }, 'Memory'),
        bar(
          memoryFraction(cluster.memory_used, cluster.memory_limit),
          `${formatBytes(cluster.memory_used)} / ${formatBytes(cluster.memory_limit)}`,
          'nbscale-memory',
          'Cluster memory'
        )
      ),
      h(
        'div',
        { className: 'nbscale-bar-row' },
        h('span', { className: 'nbscale-bar-name' }, 'CPU'),
        bar(cpuFraction(cluster.cpu, threads), `${Math.round(cluster.cpu ?? 0)}% of ${Math.max(1, threads) * 100}%`, 'nbscale-cpu', 'Cluster CPU')
      ),
      h(
        'div',
        { className: 'nbscale-tasks' },
        h('span', { className: 'nbscale-bar-name' }, 'Tasks'),
        tasks.length
          ? h('span', {}, ...tasks.map(([state, n]) => h('span', { className: `nbscale-chip nbscale-task-${state}`, 'data-state': state }, `${state} ${n}`)))
          : h('span', { className: 'nbscale-muted' }, 'none')
      ),
      workers.length ? table : h('p', { className: 'nbscale-muted' }, 'No workers.')
    );
  }
}
