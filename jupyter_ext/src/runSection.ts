/**
 * Run: the parameters form (typed inputs, pre-filled from the notebook's parameters cell),
 * the run / export / submit / cancel buttons, and the shown run's steps with live status,
 * durations, a progress count, logs, and the traceback of a failed step (as text).
 */
import { stepColour } from './colours';
import { bar, downloadText, h, replace, safeHref } from './dom';
import {
  errorTitle,
  formatDuration,
  formatTime,
  hasTraceback,
  kfpYamlFileName,
  statusLabel,
  tracebackText
} from './format';
import { coerceParameter, parameterKind, parameterText } from './parameters';
import { mergeSteps, progress } from './reducers';
import { Section } from './section';
import { PanelState, Part } from './state';
import { Engine, IParameter, IStepRun } from './wire';

export class RunSection extends Section {
  private readonly _form: HTMLFormElement;
  private readonly _buttons: HTMLElement;
  private readonly _status: HTMLElement;
  private readonly _runButtons: HTMLButtonElement[] = [];
  private readonly _cancel: HTMLButtonElement;
  private _invalid = new Set<string>();
  private _expanded = new Set<string>();

  constructor(state: PanelState) {
    super(state, 'Run', ['pipeline', 'parameters', 'run', 'settings']);
    this._form = h('form', { className: 'nbscale-params', 'aria-label': 'Pipeline parameters' });
    this._form.addEventListener('submit', ev => {
      ev.preventDefault();
      void this.run(this.state.settings.defaultEngine);
    });
    const button = (label: string, title: string, onClick: () => void, className = '') => {
      const b = h('button', { className: `nbscale-button ${className}`.trim(), type: 'button', title }, label);
      b.addEventListener('click', onClick);
      return b;
    };
    const dask = button('Run on Dask', 'Run the pipeline on the Dask cluster', () => void this.run('dask'), 'nbscale-primary');
    dask.dataset.engine = 'dask';
    const papermill = button('Run with papermill', 'Run each step as a notebook in a Jupyter kernel', () => void this.run('papermill'));
    papermill.dataset.engine = 'papermill';
    this._runButtons.push(dask, papermill);
    const exportKfp = button('Export to KFP', 'Download the Kubeflow Pipelines YAML', () => void this.exportKfp());
    const submitKfp = button('Submit to KFP', 'Submit the pipeline to the configured Kubeflow Pipelines host', () =>
      void this.submitKfp()
    );
    this._cancel = button('Cancel', 'Cancel the running pipeline', () => void this.cancel(), 'nbscale-danger');
    this._cancel.disabled = true;
    this._buttons = h(
      'div',
      { className: 'nbscale-buttons' },
      dask,
      papermill,
      exportKfp,
      submitKfp,
      this._cancel
    );
    this._status = h('div', { className: 'nbscale-run-status', 'aria-live': 'polite' });
    this.body.append(this._form, this._buttons, this._status);
    this.refresh();
  }

  async run(engine: Engine): Promise<void> {
    if (this._invalid.size) {
      this.notice(`Fix the parameters first: ${[...this._invalid].join(', ')}`, 'error');
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
      this._renderForm();
    }
    this._renderStatus();
  }

  private _renderForm(): void {
    const pipeline = this.state.pipeline;
    replace(this._form);
    this._invalid.clear();
    if (!this.state.path) {
      this._form.appendChild(h('p', { className: 'nbscale-empty' }, 'Open a notebook to run it.'));
      return;
    }
    if (!pipeline) {
      return;
    }
    if (!pipeline.parameters.length) {
      this._form.appendChild(h('p', { className: 'nbscale-muted' }, 'No parameters (tag a cell "parameters" to add some).'));
      return;
    }
    for (const p of pipeline.parameters) {
      this._form.appendChild(this._field(p));
    }
    const reset = h('button', { type: 'button', className: 'nbscale-link-button', title: "Back to the notebook's values" }, 'Reset to defaults');
    reset.addEventListener('click', () => this.state.resetParameters());
    // an invisible submit button makes Enter in a field start the run
    const submit = h('button', { type: 'submit', className: 'nbscale-hidden', tabindex: -1, 'aria-hidden': 'true' }, 'Run');
    this._form.appendChild(h('div', { className: 'nbscale-params-footer' }, reset, submit));
  }

  private _field(p: IParameter): HTMLElement {
    const kind = parameterKind(p);
    const id = `nbscale-param-${p.name}`;
    const value = p.name in this.state.parameterValues ? this.state.parameterValues[p.name] : p.default;
    let input: HTMLInputElement;
    if (kind === 'bool') {
      input = h('input', { type: 'checkbox', id, name: p.name });
      input.checked = !!value;
    } else {
      input = h('input', {
        id,
        name: p.name,
        type: kind === 'int' || kind === 'float' ? 'number' : 'text',
        step: kind === 'int' ? '1' : kind === 'float' ? 'any' : null,
        spellcheck: 'false',
        className: kind === 'json' ? 'nbscale-mono' : null
      });
      input.value = parameterText(kind, value);
    }
    input.dataset.kind = kind;
    const error = h('div', { className: 'nbscale-field-error', role: 'alert' });
    const onChange = () => {
      try {
        const v = coerceParameter(kind, kind === 'bool' ? input.checked : input.value, p.name);
        this.state.setParameter(p.name, v);
        this._invalid.delete(p.name);
        input.removeAttribute('aria-invalid');
        error.textContent = '';
      } catch (err) {
        this._invalid.add(p.name);
        input.setAttribute('aria-invalid', 'true');
        error.textContent = (err as Error).message;
      }
    };
    input.addEventListener(kind === 'bool' ? 'change' : 'input', onChange);
    return h(
      'div',
      { className: 'nbscale-field' },
      h('label', { for: id, title: `${p.name}: ${p.type}, default ${JSON.stringify(p.default)}` }, p.name, h('span', { className: 'nbscale-type' }, p.type)),
      input,
      error
    );
  }

  private _renderStatus(): void {
    const state = this.state;
    const active = state.runActive;
    const noNotebook = !state.path;
    for (const b of this._runButtons) {
      b.disabled = noNotebook || active;
    }
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
    this.setExtra(`${statusLabel(run.status)} · ${p.done}/${p.total}`, `nbscale-status-text-${run.status}`);
    const header = h(
      'div',
      { className: 'nbscale-run-header', 'data-run': run.run_id, 'data-status': run.status },
      h('span', { className: `nbscale-chip nbscale-status-${run.status}` }, statusLabel(run.status)),
      h('span', { className: 'nbscale-progress-count', 'data-done': p.done, 'data-total': p.total }, `${p.done}/${p.total} steps`),
      h('span', { className: 'nbscale-muted' }, ` · ${run.engine} · ${formatTime(run.created)}`)
    );
    const list = h('ol', { className: 'nbscale-steps', 'aria-label': 'Steps' });
    for (const step of steps) {
      list.appendChild(this._stepRow(step));
    }
    replace(
      this._status,
      header,
      bar(p.fraction, `${Math.round(p.fraction * 100)}%`, `nbscale-run-progress nbscale-status-${run.status}`),
      state.runError ? h('p', { className: 'nbscale-error' }, state.runError) : null,
      run.error ? h('p', { className: 'nbscale-error nbscale-run-error' }, run.error) : null,
      list
    );
  }

  private _stepRow(step: IStepRun): HTMLElement {
    const pipelineStep = this.state.pipeline?.steps.find(s => s.name === step.name);
    const swatch = h('span', { className: 'nbscale-swatch', 'aria-hidden': 'true' });
    swatch.style.background = stepColour(step.name, this.state.pipeline?.steps.map(s => s.name));
    const name = h('button', { className: 'nbscale-step-name', title: 'Select the step in the notebook' }, swatch, step.name);
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
        h('span', { className: 'nbscale-duration' }, step.status === 'cached' && !step.duration_s ? '' : formatDuration(step.duration_s))
      )
    );
    if (step.error && step.status === 'upstream_failed' && !hasTraceback(step.error)) {
      // the reason is enough ("upstream failed: split"): the failing step shows the details
      row.appendChild(h('div', { className: 'nbscale-step-reason' }, errorTitle(step.error)));
    } else if (step.error) {
      const err = step.error;
      const jump = h(
        'button',
        { className: 'nbscale-link-button', title: 'Select the failing cell' },
        err.cell !== null && err.cell !== undefined ? `cell ${err.cell}${err.line ? `, line ${err.line}` : ''}` : 'go to step'
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
    ].filter(([, text]) => !!text);
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
}
