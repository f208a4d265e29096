/**
 * Pipeline: the step DAG of the active notebook (dagre layout, SVG at a readable size in a
 * scrolling box), coloured by the shown run's statuses, steps with diagnostics marked, and the
 * compiler's diagnostics; clicking a step or a diagnostic selects its cell in the notebook. A
 * button opens the main-area pipeline view.
 */
import { diagnosticsByStep, renderDag } from './dag';
import { button, h, replace } from './dom';
import { cellLabel } from './format';
import { IDagLayout, layoutPipeline } from './layout';
import { stepStatuses } from './reducers';
import { Section } from './section';
import { PanelState, Part } from './state';
import { IDiagnostic, IPipelineModel } from './wire';

export function diagnosticLocation(d: IDiagnostic): string {
  if (d.cell === null || d.cell === undefined) {
    return 'notebook';
  }
  return cellLabel(d.cell, d.line);
}

const SEVERITY_ORDER: Record<string, number> = { error: 0, warning: 1, info: 2 };

export function sortDiagnostics(diagnostics: IDiagnostic[]): IDiagnostic[] {
  return diagnostics
    .map((d, i) => ({ d, i }))
    .sort(
      (a, b) =>
        (SEVERITY_ORDER[a.d.severity] ?? 3) - (SEVERITY_ORDER[b.d.severity] ?? 3) ||
        (a.d.cell ?? -1) - (b.d.cell ?? -1) ||
        a.i - b.i
    )
    .map(x => x.d);
}

export class PipelineSection extends Section {
  private _dagLayout: IDagLayout | null = null;
  private _dagOf: IPipelineModel | null = null;
  private _selected: string | null = null;
  private readonly _summary: HTMLElement;
  private readonly _dag: HTMLElement;
  private readonly _diagnostics: HTMLElement;

  constructor(state: PanelState) {
    super(state, 'Pipeline', ['pipeline', 'run']);
    this._summary = h('div', { className: 'nbscale-summary' });
    this._dag = h('div', { className: 'nbscale-dag-container' });
    this._diagnostics = h('div', { className: 'nbscale-diagnostics' });
    this.body.append(this._summary, this._dag, this._diagnostics);
    this.refresh();
  }

  protected render(part: Part): void {
    const state = this.state;
    if (!state.path) {
      this.setExtra('');
      replace(this._summary, h('p', { className: 'nbscale-empty' }, 'Open a notebook to see its pipeline.'));
      replace(this._dag);
      replace(this._diagnostics);
      return;
    }
    const pipeline = state.pipeline;
    if (!pipeline) {
      replace(
        this._summary,
        state.pipelineError
          ? h('p', { className: 'nbscale-error' }, `Could not compile ${state.path}: ${state.pipelineError}`)
          : h('p', { className: 'nbscale-empty' }, 'Compiling…')
      );
      replace(this._dag);
      replace(this._diagnostics);
      return;
    }
    if (part !== 'run') {
      this._renderSummary(pipeline);
      this._renderDiagnostics(pipeline);
    }
    this._renderDag(pipeline);
  }

  private _renderSummary(pipeline: IPipelineModel): void {
    const n = pipeline.steps.length;
    const errors = pipeline.diagnostics.filter(d => d.severity === 'error').length;
    this.setExtra(`${n} step${n === 1 ? '' : 's'}`, errors ? 'nbscale-has-errors' : '');
    const refresh = h(
      'button',
      { className: 'nbscale-link-button nbscale-refresh', title: 'Compile the saved notebook again', 'aria-label': 'Refresh' },
      '↻'
    );
    refresh.addEventListener('click', () => void this.state.refreshPipeline());
    const params = pipeline.parameters.length;
    const metrics = pipeline.metrics?.names?.length ?? 0;
    replace(
      this._summary,
      h(
        'div',
        { className: 'nbscale-summary-line' },
        h('span', { className: 'nbscale-pipeline-name', title: pipeline.notebook }, pipeline.name),
        h(
          'span',
          { className: 'nbscale-muted' },
          `${n} step${n === 1 ? '' : 's'} · ${params} parameter${params === 1 ? '' : 's'} · ${metrics} metric${
            metrics === 1 ? '' : 's'
          }${this.state.pipelineLoading ? ' · compiling…' : ''}`
        ),
        refresh
      )
    );
  }

  private _renderDag(pipeline: IPipelineModel): void {
    if (!pipeline.steps.length) {
      replace(this._dag, h('p', { className: 'nbscale-empty' }, 'No steps.'));
      return;
    }
    if (this._dagOf !== pipeline || !this._dagLayout) {
      this._dagLayout = layoutPipeline(pipeline);
      this._dagOf = pipeline;
    }
    const svg = renderDag(this._dagLayout, {
      statuses: stepStatuses(pipeline, this.state.run),
      selected: this._selected,
      idPrefix: 'nbscale-dag',
      diagnostics: diagnosticsByStep(pipeline),
      onSelect: name => {
        this._selected = name;
        const step = pipeline.steps.find(s => s.name === name);
        this.state.requestCell(step?.cells?.[0]);
        this._renderDag(pipeline);
      }
    });
    const open = button('Open pipeline view', {
      kind: 'minimal',
      className: 'nbscale-open-pipeline-view',
      title: 'Open the pipeline in the main area: zoom, edge names, live statuses, step details',
      onClick: () => this.state.requestPipelineView(this._selected)
    });
    replace(this._dag, h('div', { className: 'nbscale-dag-scroll' }, svg), open);
  }

  private _renderDiagnostics(pipeline: IPipelineModel): void {
    const diagnostics = sortDiagnostics(pipeline.diagnostics ?? []);
    if (!diagnostics.length) {
      replace(this._diagnostics, h('p', { className: 'nbscale-ok' }, '✓ No problems found.'));
      return;
    }
    const list = h('ul', { className: 'nbscale-diagnostic-list', 'aria-label': 'Diagnostics' });
    for (const d of diagnostics) {
      const item = h(
        'li',
        {
          className: `nbscale-diagnostic nbscale-severity-${d.severity}`,
          'data-code': d.code,
          'data-cell': d.cell ?? '',
          tabindex: 0,
          role: 'button',
          title: d.hint ? `${d.message}\n${d.hint}` : d.message
        },
        h('span', { className: 'nbscale-severity' }, d.severity),
        h('span', { className: 'nbscale-diagnostic-where' }, diagnosticLocation(d)),
        h('span', { className: 'nbscale-diagnostic-code' }, d.code),
        h('div', { className: 'nbscale-diagnostic-message' }, d.message),
        d.hint ? h('div', { className: 'nbscale-diagnostic-hint' }, d.hint) : null
      );
      const select = () => this.state.requestCell(d.cell);
      item.addEventListener('click', select);
      item.addEventListener('keydown', (ev: KeyboardEvent) => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          select();
        }
      });
      list.appendChild(item);
    }
    const errors = diagnostics.filter(d => d.severity === 'error').length;
    const warnings = diagnostics.length - errors;
    replace(
      this._diagnostics,
      h(
        'div',
        { className: 'nbscale-subtitle' },
        `Diagnostics: ${errors} error${errors === 1 ? '' : 's'}, ${warnings} other${warnings === 1 ? '' : 's'}`
      ),
      list
    );
  }
}
