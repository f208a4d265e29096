/**
 * The pipeline view in the main area: the panel's notebook's DAG at a readable size, with zoom
 * (buttons, Ctrl+wheel, + / - / 0 keys) and pan (drag or scroll), a left-to-right or top-down
 * layout, the names that flow written on the edges, diagnostics marked on steps, and the shown
 * run's live statuses (it follows the panel's PanelState). A click on a step selects its cell in
 * the notebook and shows the step's detail (stepDetail.ts) beside the drawing.
 */
import { Widget } from '@lumino/widgets';

import { diagnosticsByStep, renderDag } from './dag';
import { button, h, replace } from './dom';
import { statusLabel } from './format';
import { IDagLayout, layoutPipeline } from './layout';
import { stepStatuses } from './reducers';
import { IStepDetailSource, renderStepDetail } from './stepDetail';
import { PanelState, Part } from './state';
import { IPipelineModel, isFinished } from './wire';

export const PIPELINE_VIEW_ID = 'nbscale-pipeline-view';
export const MIN_ZOOM = 0.25;
export const MAX_ZOOM = 4;
const ZOOM_STEP = 1.25;
const LABEL_CHAR_WIDTH = 7.8; // the view's 13 px labels
const NODE_HEIGHT = 34;

export type Direction = 'LR' | 'TB';

export class PipelineView extends Widget {
  /** The zoom and layout controls (the main-area widget puts them in its toolbar). */
  readonly controls: HTMLElement;
  private _zoom = 1;
  private _direction: Direction = 'LR';
  private _selected: string | null = null;
  private _dagLayout: IDagLayout | null = null;
  private _dagLayoutOf: { pipeline: IPipelineModel; direction: Direction } | null = null;
  private _detailKey: string | null = null;
  private _detailSeq = 0;
  private readonly _canvas: HTMLElement;
  private readonly _detail: HTMLElement;
  private readonly _zoomLabel: HTMLElement;
  private readonly _directionButton: HTMLButtonElement;

  constructor(
    readonly state: PanelState,
    readonly source: IStepDetailSource
  ) {
    super();
    this.id = PIPELINE_VIEW_ID;
    this.addClass('nbscale-pipeline-view');
    this.title.label = 'Pipeline';
    this.title.closable = true;
    this._zoomLabel = h('span', { className: 'nbscale-zoom-label', 'aria-live': 'polite' }, '100%');
    this._directionButton = button('Top-down', {
      kind: 'minimal',
      className: 'nbscale-direction',
      title: 'Lay the pipeline out top-down or left to right',
      onClick: () => this.setDirection(this._direction === 'LR' ? 'TB' : 'LR')
    });
    this.controls = h(
      'div',
      { className: 'nbscale-pipeline-view-controls', role: 'toolbar', 'aria-label': 'Pipeline view' },
      button('−', { kind: 'minimal', label: 'Zoom out', title: 'Zoom out (Ctrl+wheel, -)', className: 'nbscale-zoom-out', onClick: () => this.zoomBy(1 / ZOOM_STEP) }),
      this._zoomLabel,
      button('+', { kind: 'minimal', label: 'Zoom in', title: 'Zoom in (Ctrl+wheel, +)', className: 'nbscale-zoom-in', onClick: () => this.zoomBy(ZOOM_STEP) }),
      button('Fit', { kind: 'minimal', title: 'Fit the pipeline in the view', className: 'nbscale-zoom-fit', onClick: () => this.fit() }),
      button('100%', { kind: 'minimal', title: 'Actual size (0)', className: 'nbscale-zoom-reset', onClick: () => this.setZoom(1) }),
      this._directionButton
    );
    this._canvas = h('div', { className: 'nbscale-pipeline-canvas', tabindex: 0, 'aria-label': 'Pipeline drawing' });
    this._detail = h('div', { className: 'nbscale-pipeline-detail', 'aria-label': 'Step detail' });
    this.node.append(h('div', { className: 'nbscale-pipeline-view-body' }, this._canvas, this._detail));
    this._listen();
    state.changed.connect(this._onChanged, this);
    this._render();
    this._renderDetail();
  }

  get zoom(): number {
    return this._zoom;
  }

  get direction(): Direction {
    return this._direction;
  }

  get selected(): string | null {
    return this._selected;
  }

  setZoom(zoom: number, anchor?: { x: number; y: number }): void {
    const next = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, zoom));
    const canvas = this._canvas;
    // keep the drawing's point under the anchor (the pointer, else the centre) where it is
    const ax = anchor?.x ?? canvas.clientWidth / 2;
    const ay = anchor?.y ?? canvas.clientHeight / 2;
    const px = (canvas.scrollLeft + ax) / this._zoom;
    const py = (canvas.scrollTop + ay) / this._zoom;
    this._zoom = next;
    this._zoomLabel.textContent = `${Math.round(next * 100)}%`;
    this._render();
    canvas.scrollLeft = px * next - ax;
    canvas.scrollTop = py * next - ay;
  }

  zoomBy(factor: number, anchor?: { x: number; y: number }): void {
    this.setZoom(this._zoom * factor, anchor);
  }

  /** The zoom at which the whole drawing fits the canvas (never above 100%: text stays its size). */
  fit(): void {
    const layout = this._currentLayout();
    const width = this._canvas.clientWidth;
    const height = this._canvas.clientHeight;
    if (!layout || !width || !height) {
      return;
    }
    this.setZoom(Math.min(1, (width - 8) / layout.width, (height - 8) / layout.height));
  }

  setDirection(direction: Direction): void {
    this._direction = direction;
    this._directionButton.textContent = direction === 'LR' ? 'Top-down' : 'Left to right';
    this._render();
  }

  /** Select a step: its cell in the notebook, its detail here. */
  selectStep(name: string | null, selectCell = true): void {
    this._selected = name;
    const step = this.state.pipeline?.steps.find(s => s.name === name);
    if (selectCell && step) {
      this.state.requestCell(step.cells?.[0]);
    }
    this._render();
    this._renderDetail();
  }

  protected onCloseRequest(msg: any): void {
    super.onCloseRequest(msg);
    this.dispose();
  }

  dispose(): void {
    if (!this.isDisposed) {
      this.state.changed.disconnect(this._onChanged, this);
    }
    super.dispose();
  }

  private _listen(): void {
    const canvas = this._canvas;
    canvas.addEventListener(
      'wheel',
      (ev: WheelEvent) => {
        if (!ev.ctrlKey && !ev.metaKey) {
          return; // a plain wheel scrolls
        }
        ev.preventDefault();
        const box = canvas.getBoundingClientRect();
        this.zoomBy(Math.exp(-ev.deltaY * 0.002), { x: ev.clientX - box.left, y: ev.clientY - box.top });
      },
      { passive: false }
    );
    let drag: { x: number; y: number; left: number; top: number } | null = null;
    canvas.addEventListener('pointerdown', (ev: PointerEvent) => {
      if (ev.button !== 0 || (ev.target as Element).closest?.('.nbscale-dag-node')) {
        return;
      }
      drag = { x: ev.clientX, y: ev.clientY, left: canvas.scrollLeft, top: canvas.scrollTop };
      canvas.classList.add('nbscale-panning');
      canvas.setPointerCapture?.(ev.pointerId);
    });
    canvas.addEventListener('pointermove', (ev: PointerEvent) => {
      if (drag) {
        canvas.scrollLeft = drag.left - (ev.clientX - drag.x);
        canvas.scrollTop = drag.top - (ev.clientY - drag.y);
      }
    });
    const stop = () => {
      drag = null;
      canvas.classList.remove('nbscale-panning');
    };
    canvas.addEventListener('pointerup', stop);
    canvas.addEventListener('pointercancel', stop);
    canvas.addEventListener('keydown', (ev: KeyboardEvent) => {
      const action: Record<string, () => void> = {
        '+': () => this.zoomBy(ZOOM_STEP),
        '=': () => this.zoomBy(ZOOM_STEP),
        '-': () => this.zoomBy(1 / ZOOM_STEP),
        '0': () => this.setZoom(1)
      };
      if (action[ev.key] && (ev.target as Element) === canvas) {
        ev.preventDefault();
        action[ev.key]();
      }
    });
  }

  private _onChanged(_: PanelState, part: Part): void {
    if (part === 'path') {
      this._selected = null;
    }
    if (part === 'path' || part === 'pipeline' || part === 'run') {
      this._render();
      this._renderDetail();
    }
  }

  private _currentLayout(): IDagLayout | null {
    const pipeline = this.state.pipeline;
    if (!pipeline || !pipeline.steps.length) {
      return null;
    }
    const of = this._dagLayoutOf;
    if (!this._dagLayout || !of || of.pipeline !== pipeline || of.direction !== this._direction) {
      this._dagLayout = layoutPipeline(pipeline, {
        direction: this._direction,
        edgeLabels: true,
        charWidth: LABEL_CHAR_WIDTH,
        nodeHeight: NODE_HEIGHT,
        padding: 16
      });
      this._dagLayoutOf = { pipeline, direction: this._direction };
    }
    return this._dagLayout;
  }

  private _render(): void {
    const state = this.state;
    const pipeline = state.pipeline;
    this.title.label = pipeline ? `Pipeline: ${pipeline.name}` : 'Pipeline';
    this.title.caption = state.path ?? '';
    if (!state.path) {
      replace(this._canvas, h('p', { className: 'nbscale-empty' }, 'Open a notebook to see its pipeline.'));
      return;
    }
    const layout = this._currentLayout();
    if (!pipeline || !layout) {
      const text = state.pipelineError ? `Could not compile ${state.path}: ${state.pipelineError}` : pipeline ? 'No steps.' : 'Compiling…';
      replace(this._canvas, h('p', { className: state.pipelineError ? 'nbscale-error' : 'nbscale-empty' }, text));
      return;
    }
    const svg = renderDag(layout, {
      statuses: stepStatuses(pipeline, state.run),
      selected: this._selected,
      idPrefix: PIPELINE_VIEW_ID,
      diagnostics: diagnosticsByStep(pipeline),
      zoom: this._zoom,
      onSelect: name => this.selectStep(name)
    });
    svg.setAttribute('data-direction', this._direction);
    replace(this._canvas, svg);
  }

  /** The selected step's detail: what the run store has once the step finished, else its status. */
  private _renderDetail(): void {
    const state = this.state;
    const name = this._selected;
    // the drawing has the whole width until a step is chosen
    this._detail.hidden = !name || !state.path;
    this.toggleClass('nbscale-with-detail', !this._detail.hidden);
    if (!name || !state.path) {
      this._detailKey = null;
      replace(this._detail);
      return;
    }
    const run = state.run;
    const row = run?.steps.find(s => s.name === name);
    if (!run || !row || !isFinished(row.status)) {
      this._detailKey = null;
      const status = row ? statusLabel(row.status) : run ? 'not in the shown run' : 'no run yet';
      replace(
        this._detail,
        h('h3', { className: 'nbscale-step-detail-title' }, name),
        h('p', { className: 'nbscale-muted', 'data-status': row?.status ?? 'none' }, `${status}${run ? '' : ': run the pipeline to see what this step shows.'}`)
      );
      return;
    }
    const key = `${state.path}\n${run.run_id}\n${name}\n${row.status}\n${row.finished ?? ''}`;
    if (key === this._detailKey) {
      return;
    }
    this._detailKey = key;
    void this._loadDetail(state.path, run.run_id, name, key);
  }

  private async _loadDetail(path: string, runId: string, step: string, key: string): Promise<void> {
    const seq = ++this._detailSeq;
    if (this._detail.firstElementChild?.getAttribute('data-step') !== step) {
      replace(this._detail, h('p', { className: 'nbscale-empty' }, `Loading ${step}…`));
    }
    try {
      const detail = await this.source.stepDetail(path, runId, step);
      if (seq !== this._detailSeq || key !== this._detailKey) {
        return;
      }
      replace(
        this._detail,
        renderStepDetail(detail, {
          imageUrl: file => this.source.imageUrl(path, runId, step, file),
          onCell: index => this.state.requestCell(index)
        })
      );
    } catch (err) {
      if (seq === this._detailSeq) {
        this._detailKey = null;
        replace(this._detail, h('p', { className: 'nbscale-error' }, `Could not load ${step}: ${err instanceof Error ? err.message : String(err)}`));
      }
    }
  }
}
