/**
 * Runs: every run of the notebook (any status and engine, started from the CLI, papermill or the
 * panel: they share the run store), newest first, with its status, engine, start, duration and the
 * parameters that differ between runs. A click shows the run in the Run section; ticking two or
 * more and *Compare* opens the comparison view in the main area.
 */
import { h, replace } from './dom';
import { formatDuration, formatShortTime, formatTime, statusLabel } from './format';
import { runLabel, varyingParameters } from './metrics';
import { formatValue } from './metricsSection';
import { Section } from './section';
import { PanelState, Part } from './state';
import { IRunSummary, isFinished } from './wire';

/** Seconds a run took (or has taken so far, until `now`); null before it started. */
export function runDuration(run: IRunSummary, now: Date = new Date()): number | null {
  const start = Date.parse(run.started ?? run.created);
  if (isNaN(start)) {
    return null;
  }
  const end = run.finished ? Date.parse(run.finished) : isFinished(run.status) ? NaN : now.getTime();
  return isNaN(end) ? null : Math.max(0, (end - start) / 1000);
}

/** `seed=7, C=0.1`: the parameters of a run, those in `names` only. */
export function parameterText(run: IRunSummary, names: string[]): string {
  return names
    .filter(name => name in (run.parameters ?? {}))
    .map(name => `${name}=${formatValue(run.parameters[name])}`)
    .join(', ');
}

export class RunListSection extends Section {
  private readonly _picked = new Set<string>();
  private readonly _list: HTMLElement;
  private readonly _compare: HTMLButtonElement;

  /** `compare`: open the comparison of the picked runs (oldest first: the oldest is the reference). */
  constructor(
    state: PanelState,
    private readonly _openCompare: (runIds: string[]) => void
  ) {
    super(state, 'Runs', ['runs', 'run']);
    this._compare = h(
      'button',
      { className: 'jp-Button jp-mod-styled nbscale-compare-button', type: 'button', disabled: true, title: 'Tick two or more runs to compare them' },
      'Compare'
    );
    this._compare.addEventListener('click', () => this.compare());
    this._list = h('div', { className: 'nbscale-run-list' });
    this.body.append(h('div', { className: 'nbscale-row nbscale-run-list-actions' }, this._compare), this._list);
    this.refresh();
  }

  /** The ticked runs, oldest first. */
  get picked(): string[] {
    const runs = this.state.runs ?? [];
    return runs.filter(r => this._picked.has(r.run_id)).reverse().map(r => r.run_id);
  }

  pick(runId: string, on: boolean): void {
    if (on) {
      this._picked.add(runId);
    } else {
      this._picked.delete(runId);
    }
    this._renderActions();
  }

  compare(): void {
    const ids = this.picked;
    if (ids.length >= 2) {
      this._openCompare(ids);
    }
  }

  protected render(part: Part): void {
    if (part === 'path') {
      this._picked.clear();
    }
    this._renderList();
    this._renderActions();
  }

  private _renderActions(): void {
    const n = this.picked.length;
    this._compare.disabled = n < 2;
    this._compare.textContent = n ? `Compare ${n} runs` : 'Compare';
    this._compare.title = n < 2 ? 'Tick two or more runs to compare them' : 'Open the comparison in the main area';
  }

  private _renderList(): void {
    if (!this.state.path) {
      replace(this._list, h('p', { className: 'nbscale-empty' }, 'Open a notebook to see its runs.'));
      this.setExtra('');
      return;
    }
    const runs = this.state.runs;
    if (!runs) {
      replace(this._list, this.state.runsError ? h('p', { className: 'nbscale-error' }, this.state.runsError) : h('p', { className: 'nbscale-muted' }, 'Loading runs…'));
      return;
    }
    this.setExtra(`${runs.length} run${runs.length === 1 ? '' : 's'}`);
    if (!runs.length) {
      replace(this._list, h('p', { className: 'nbscale-muted' }, 'No runs yet: run the notebook here, or with nbscale run or papermill.'));
      return;
    }
    for (const id of Array.from(this._picked)) {
      if (!runs.some(r => r.run_id === id)) {
        this._picked.delete(id);
      }
    }
    const varying = varyingParameters(runs);
    const table = h(
      'table',
      { className: 'nbscale-table nbscale-runs-table' },
      h(
        'thead',
        {},
        h('tr', {}, h('th', {}, h('span', { className: 'nbscale-visually-hidden' }, 'compare')), h('th', {}, 'run'), h('th', {}, 'engine'), h('th', { className: 'nbscale-num' }, 'time'), h('th', {}, 'parameters'))
      )
    );
    const body = h('tbody');
    for (const run of runs) {
      body.appendChild(this._row(run, varying));
    }
    table.appendChild(body);
    replace(this._list, h('div', { className: 'nbscale-table-scroll' }, table));
  }

  private _row(run: IRunSummary, varying: string[]): HTMLElement {
    const label = runLabel(run.run_id);
    const box = h('input', { type: 'checkbox', 'aria-label': `Compare run ${label}`, 'data-run': run.run_id }) as HTMLInputElement;
    box.checked = this._picked.has(run.run_id);
    box.addEventListener('click', e => e.stopPropagation());
    box.addEventListener('change', () => this.pick(run.run_id, box.checked));
    const duration = runDuration(run);
    const params = parameterText(run, varying);
    const allParams = parameterText(run, Object.keys(run.parameters ?? {}));
    const row = h(
      'tr',
      {
        'data-run': run.run_id,
        className: this.state.run?.run_id === run.run_id ? 'nbscale-current-run' : '',
        tabindex: 0,
        title: `Show run ${run.run_id}`
      },
      h('td', {}, box),
      h(
        'td',
        { className: 'nbscale-nowrap', title: `${statusLabel(run.status)} · ${formatTime(run.created)}` },
        h('span', { className: `nbscale-dot nbscale-status-${run.status}`, role: 'img', 'aria-label': statusLabel(run.status) }),
        ' ',
        h('span', { className: 'nbscale-run-label' }, label),
        ' ',
        h('span', { className: 'nbscale-muted' }, formatShortTime(run.created))
      ),
      h('td', { className: 'nbscale-run-engine' }, run.engine),
      h('td', { className: 'nbscale-num nbscale-nowrap' }, duration === null ? '–' : isFinished(run.status) ? formatDuration(duration) : `${formatDuration(duration)}…`),
      h('td', { className: 'nbscale-run-params', title: allParams || 'no parameters' }, params || (allParams ? 'defaults' : '–'))
    );
    const show = () => void this.act('Could not show the run', () => this.state.showRun(run.run_id));
    row.addEventListener('click', show);
    row.addEventListener('keydown', e => {
      if (e.key === 'Enter') {
        show();
      }
    });
    return row;
  }
}
