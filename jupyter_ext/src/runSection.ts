/**
 * Run: the parameters form (parameterForm.ts: this notebook's values, changed ones marked),
 * the run / export / submit / cancel buttons (JupyterLab's jp-Button), and the shown run's steps with live status,
 * durations, a progress count, logs, and the traceback of a failed step (as text). Live: queued
 * apart from running, a running step's elapsed time (ticking), output and Dask compute's progress
 * (a small bar of tasks done), the "starting cluster" phase, and a progress that is 100 % only for
 * a succeeded run (reducers.progressText).
 */
import { stepColour } from './colours';
import { bar, button, downloadText, h, replace, safeHref } from './dom';
import {
  cellLabel,
  errorTitle,
  formatDuration,
  formatElapsed,
  formatTime,
  hasTraceback,
  kfpYamlFileName,
  secondsSince,
  statusLabel,
  tracebackText
} from './format';
import { ParameterForm } from './parameterForm';
import { mergeSteps, progress, progressText } from './reducers';
import { renderCost } from './runInsights';
import { Section } from './section';
import { PanelState, Part } from './state';
import { Engine, IComputeProgress, IStepRun } from './wire';

export class RunSection extends Section {
  readonly form: ParameterForm;
  private readonly _buttons: HTMLElement;
  private readonly _status: HTMLElement;
  private readonly _runButtons: HTMLButtonElement[] = [];
  private readonly _cancel: HTMLButtonElement;
  private _expanded = new Set<string>();

  constructor(state: PanelState) {
    super(state, 'Run', ['pipeline', 'parameters', 'run', 'settings']);
    this.form = new ParameterForm(state, () => void this.run(this.state.settings.defaultEngine));
    const dask = button('Run on Dask', {
      title: 'Run the pipeline on the Dask cluster',
      kind: 'accept',
      onClick: () => void this.run('dask')
    });
    dask.dataset.engine = 'dask';
    const papermill = button('Run with papermill', {
      title: 'Run each step as a notebook in a Jupyter kernel',
      onClick: () => void this.run('papermill')
    });
    papermill.dataset.engine = 'papermill';
    this._runButtons.push(dask, papermill);
    const exportKfp = button('Export to KFP', { title: 'Download the Kubeflow Pipelines YAML', onClick: () => void this.exportKfp() });
    const submitKfp = button('Submit to KFP', {
      title: 'Submit the pipeline to the configured Kubeflow Pipelines host',
      onClick: () => void this.submitKfp()
    });
    this._cancel = button('Cancel', { title: 'Cancel the running pipeline', kind: 'warn', onClick: () => void this.cancel() });
    this._cancel.disabled = true;
    this._buttons = h(
      'div',
      { className: 'nbscale-buttons', role: 'group', 'aria-label': 'Run actions' },
      dask,
      papermill,
      exportKfp,
      submitKfp,
      this._cancel
    );
    this._status = h('div', { className: 'nbscale-run-status', 'aria-live': 'polite' });
    this.body.append(this.form.node, this._buttons, this._status);
    this.refresh();
  }

  async run(engine: Engine): Promise<void> {
    const blocked = this.state.runBlockedReason;
    if (blocked) {
      this.notice(blocked, 'error');
      return;
    }
    const invalid = this.form.invalid;
    if (invalid.length) {
      this.notice(`Fix the parameters first: ${invalid.join(', ')}`, 'error');
      return;
    }
    await this.act('Could not start the run', () => this.state.startRun(engine));
  }

  async cancel(): Promise<void> {
    await this.act('Could not cancel', () => this.state.cancelRun());
  }

  async exportKfp(): Promise<void> {
    await this.act('Could not export', async () => {
      const yaml = await this.state.exportKfp();
      const file = kfpYamlFileName(this.state.pipeline?.name);
      downloadText(yaml, file);
      this.notice(`Exported ${file}`, 'success');
    });
  }

  async submitKfp(): Promise<void> {
    await this.act('Could not submit to KFP', async () => {
      const url = await this.state.submitKfp();
      const href = safeHref(url);
      this.notice(
        'Submitted to Kubeflow Pipelines. ',
        'success',
        href ? h('a', { href, target: '_blank', rel: 'noopener noreferrer' }, 'Open the run') : h('span', {}, url ?? '')
      );
    });
  }

  protected render(part: Part): void {
    if (part === 'path' || part === 'pipeline' || part === 'parameters') {
      this.form.render();
    }
    this._renderStatus();
  }

  /** Run buttons are disabled while a run cannot start; their title says why (the first error). */
  private _blockRunButtons(reason: string | null): void {
    for (const b of this._runButtons) {
      b.dataset.title = b.dataset.title ?? b.title;
      b.disabled = reason !== null;
      b.title = reason ?? b.dataset.title;
    }
  }

  private _renderStatus(): void {
    const state = this.state;
    const active = state.runActive;
    this._blockRunButtons(state.runBlockedReason);
    this._cancel.disabled = !active;
    const run = state.run;
    if (!run) {
      this.setExtra('');
      replace(
        this._status,
        state.runError
          ? h('p', { className: 'nbscale-error' }, state.runError)
          : state.path
            ? h('p', { className: 'nbscale-muted' }, 'No run of this notebook yet.')
            : null
      );
      return;
    }
    const steps = mergeSteps(state.pipeline, run);
    const p = progress(steps);
    const text = progressText(run.status, p);
    this.setExtra(`${statusLabel(run.status)} · ${p.done}/${p.total}`, `nbscale-status-text-${run.status}`);
    const header = h(
      'div',
      { className: 'nbscale-run-header', 'data-run': run.run_id, 'data-status': run.status },
      h('span', { className: `nbscale-chip nbscale-status-${run.status}` }, statusLabel(run.status)),
      run.phase ? h('span', { className: 'nbscale-run-phase', role: 'status' }, run.phase) : null,
      h('span', { className: 'nbscale-progress-count', 'data-done': p.done, 'data-total': p.total }, text.count),
      h('span', { className: 'nbscale-muted' }, ` · ${run.engine} · ${formatTime(run.created)}`)
    );
    const list = h('ol', { className: 'nbscale-steps', 'aria-label': 'Steps' });
    for (const step of steps) {
      list.appendChild(this._stepRow(step));
    }
    replace(
      this._status,
      header,
      bar(p.fraction, text.bar, `nbscale-run-progress nbscale-status-${run.status}`, 'Run progress'),
      state.runError ? h('p', { className: 'nbscale-error' }, state.runError) : null,
      run.error ? h('p', { className: 'nbscale-error nbscale-run-error' }, run.error) : null,
      list,
      renderCost(run)
    );
  }

  private _stepRow(step: IStepRun): HTMLElement {
    const pipelineStep = this.state.pipeline?.steps.find(s => s.name === step.name);
    const swatch = h('span', { className: 'nbscale-swatch', 'aria-hidden': 'true' });
    swatch.style.background = stepColour(step.name, this.state.pipeline?.steps.map(s => s.name));
    // a long name ellipsizes in a narrow sidebar: the title keeps it whole
    const name = h(
      'button',
      { className: 'nbscale-step-name', title: `${step.name}: select the step in the notebook` },
      swatch,
      h('span', { className: 'nbscale-step-label' }, step.name)
    );
    name.addEventListener('click', () => this.state.requestCell(step.error?.cell ?? pipelineStep?.cells?.[0]));
    const row = h(
      'li',
      {
        className: `nbscale-step nbscale-status-${step.status}`,
        'data-step': step.name,
        'data-status': step.status,
        'data-finished': step.finished ?? ''
      },
      h(
        'div',
        { className: 'nbscale-step-line' },
        h('span', { className: `nbscale-dot nbscale-status-${step.status}`, title: statusLabel(step.status) }),
        name,
        h('span', { className: 'nbscale-step-status' }, statusLabel(step.status)),
        step.cached && step.status !== 'cached' ? h('span', { className: 'nbscale-tag' }, 'cache') : null,
        step.attempts > 1 ? h('span', { className: 'nbscale-tag', title: 'attempts' }, `×${step.attempts}`) : null,
        this._durationCell(step)
      )
    );
    if (step.status === 'running' && step.compute) {
      row.appendChild(computeBar(step.name, step.compute));
    }
    if (step.status === 'running' && (step.stdout || step.stderr)) {
      // a running step's output as it prints it (the last lines); the whole log comes with its end
      const tail = [step.stdout, step.stderr].filter(Boolean).join('').split('\n').slice(-12).join('\n');
      row.appendChild(h('pre', { className: 'nbscale-live-output', 'aria-label': `Output of ${step.name} so far` }, tail));
    }
    if (step.error && step.status === 'upstream_failed' && !hasTraceback(step.error)) {
      // the reason is enough ("upstream failed: split"): the failing step shows the details
      row.appendChild(h('div', { className: 'nbscale-step-reason' }, errorTitle(step.error)));
    } else if (step.error) {
      const err = step.error;
      const jump = h(
        'button',
        { className: 'nbscale-link-button', title: 'Select the failing cell' },
        err.cell !== null && err.cell !== undefined ? cellLabel(err.cell, err.line) : 'go to step'
      );
      jump.addEventListener('click', () => this.state.requestCell(err.cell ?? pipelineStep?.cells?.[0]));
      row.appendChild(
        h(
          'div',
          { className: 'nbscale-error-box' },
          h('div', { className: 'nbscale-error-title' }, errorTitle(err), ' ', jump),
          hasTraceback(err) ? h('pre', { className: 'nbscale-traceback' }, tracebackText(err)) : null
        )
      );
    }
    if (step.stale?.length) {
      row.appendChild(h('div', { className: 'nbscale-stale' }, `ran again because: ${step.stale.join('; ')}`));
    }
    const logs = [
      ['stdout', step.stdout],
      ['stderr', step.stderr]
    ].filter(([, text]) => !!text && step.status !== 'running');
    for (const [label, text] of logs) {
      const key = `${step.name}/${label}`;
      const details = h('details', { className: 'nbscale-log' }, h('summary', {}, label as string), h('pre', {}, text as string));
      details.open = this._expanded.has(key);
      details.addEventListener('toggle', () => {
        if (details.open) {
          this._expanded.add(key);
        } else {
          this._expanded.delete(key);
        }
      });
      row.appendChild(details);
    }
    return row;
  }

  // --- elapsed time of running steps: ticks every second, without re-rendering the steps ---

  private _ticker: ReturnType<typeof setInterval> | null = null;

  private _durationCell(step: IStepRun): HTMLElement {
    if (step.status === 'running' && step.started) {
      const cell = h('span', { className: 'nbscale-duration nbscale-elapsed', 'data-started': step.started, title: 'running for' });
      cell.textContent = formatElapsed(secondsSince(step.started));
      this._startTicking();
      return cell;
    }
    return h('span', { className: 'nbscale-duration' }, step.status === 'cached' && !step.duration_s ? '' : formatDuration(step.duration_s));
  }

  private _startTicking(): void {
    if (this._ticker === null) {
      this._ticker = setInterval(() => this.tick(), 1000);
    }
  }

  /** Update the elapsed times shown; stops the ticker when no step runs. */
  tick(now: number = Date.now()): void {
    const cells = this.node.querySelectorAll<HTMLElement>('.nbscale-elapsed[data-started]');
    cells.forEach(cell => {
      cell.textContent = formatElapsed(secondsSince(cell.dataset.started, now));
    });
    if (!cells.length && this._ticker !== null) {
      clearInterval(this._ticker);
      this._ticker = null;
    }
  }

  dispose(): void {
    if (this._ticker !== null) {
      clearInterval(this._ticker);
      this._ticker = null;
    }
    super.dispose();
  }
}

/** A running step's Dask compute on the cluster: a small bar of its tasks done (step_progress events). */
export function computeBar(step: string, compute: IComputeProgress): HTMLElement {
  const label = `computing ${compute.done}/${compute.total} tasks`;
  const node = bar(compute.done / compute.total, label, 'nbscale-bar-small nbscale-compute-progress', `Compute of ${step}`);
  node.dataset.done = String(compute.done);
  node.dataset.total = String(compute.total);
  return node;
}
