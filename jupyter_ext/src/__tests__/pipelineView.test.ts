import { MAX_ZOOM, MIN_ZOOM, PipelineView } from '../pipelineView';
import { IStepDetailSource } from '../stepDetail';
import { IStepDetail } from '../wire';
import { attach, detail, flush, loaded, stepRun, summary } from './fixtures';

afterEach(() => {
  document.body.innerHTML = '';
});

/** A fake step-detail server: records what was asked, answers a detail with one figure. */
class FakeSource implements IStepDetailSource {
  asked: string[] = [];
  async stepDetail(path: string, runId: string, step: string): Promise<IStepDetail> {
    this.asked.push(`${path} ${runId} ${step}`);
    return {
      ...stepRun(step, 'succeeded'),
      run_id: runId,
      cells: [{ cell: 9, warnings: [], outputs: [{ type: 'image', mime: 'image/png', file: `${step}-cell9-1.png` }] }],
      inputs: [],
      outputs: []
    };
  }
  imageUrl(path: string, runId: string, step: string, file: string): string {
    return `/img/${runId}/${step}/${file}`;
  }
}

function node(view: PipelineView, step: string): SVGGElement {
  return view.node.querySelector(`.nbscale-dag-node[data-step="${step}"]`) as SVGGElement;
}

describe('Pipeline view (main area)', () => {
  it('draws the pipeline left to right with the names that flow on its edges', async () => {
    const { state } = await loaded();
    const view = attach(new PipelineView(state, new FakeSource()));
    const svg = view.node.querySelector('svg.nbscale-dag')!;
    expect(svg.getAttribute('data-direction')).toBe('LR');
    expect(view.node.querySelectorAll('.nbscale-dag-node')).toHaveLength(6);
    const labels = Array.from(view.node.querySelectorAll('.nbscale-dag-edge-label')).map(l => l.childNodes[0].textContent);
    expect(labels).toContain('X_train, y_train');
    expect(view.title.label).toBe('Pipeline: iris');
    view.setDirection('TB');
    expect(view.node.querySelector('svg.nbscale-dag')!.getAttribute('data-direction')).toBe('TB');
    view.dispose();
    state.dispose();
  });

  it('zooms with its buttons and Ctrl+wheel, within bounds; a plain wheel does not zoom', async () => {
    const { state } = await loaded();
    const view = attach(new PipelineView(state, new FakeSource()));
    const width = () => Number(view.node.querySelector('svg.nbscale-dag')!.getAttribute('width'));
    const base = width();
    (view.controls.querySelector('.nbscale-zoom-in') as HTMLElement).click();
    expect(view.zoom).toBeCloseTo(1.25);
    expect(width()).toBe(Math.ceil((base * 1.25)));
    expect(view.controls.querySelector('.nbscale-zoom-label')!.textContent).toBe('125%');
    (view.controls.querySelector('.nbscale-zoom-reset') as HTMLElement).click();
    expect(view.zoom).toBe(1);
    const canvas = view.node.querySelector('.nbscale-pipeline-canvas')!;
    canvas.dispatchEvent(new WheelEvent('wheel', { deltaY: -200, ctrlKey: true, cancelable: true }));
    expect(view.zoom).toBeGreaterThan(1);
    const zoomed = view.zoom;
    canvas.dispatchEvent(new WheelEvent('wheel', { deltaY: -200, cancelable: true }));
    expect(view.zoom).toBe(zoomed);
    view.setZoom(100);
    expect(view.zoom).toBe(MAX_ZOOM);
    view.setZoom(0);
    expect(view.zoom).toBe(MIN_ZOOM);
    view.dispose();
    state.dispose();
  });

  it('colours the live run and follows its changes', async () => {
    const { state } = await loaded(api => {
      api.runList = [summary('r1', 'running')];
      api.details.set('r1', detail('r1', 'running', [stepRun('load', 'succeeded'), stepRun('split', 'running')]));
    });
    const view = attach(new PipelineView(state, new FakeSource()));
    expect(node(view, 'load').getAttribute('data-status')).toBe('succeeded');
    expect(node(view, 'split').getAttribute('data-status')).toBe('running');
    state.handleEvent({ type: 'step', run_id: 'r1', step: 'split', status: 'failed' });
    expect(node(view, 'split').getAttribute('data-status')).toBe('failed');
    view.dispose();
    state.dispose();
  });

  it("marks steps with diagnostics", async () => {
    const { state } = await loaded(api => {
      api.pipelineModel.diagnostics = [{ severity: 'warning', code: 'c', message: 'careful', cell: 10, line: 1, col: 0 }];
    });
    const view = attach(new PipelineView(state, new FakeSource()));
    expect(node(view, 'train_rf').getAttribute('class')).toContain('nbscale-dag-has-warning');
    view.dispose();
    state.dispose();
  });

  it("a click on a step selects its cell and shows the finished step's detail", async () => {
    const source = new FakeSource();
    const { state } = await loaded(api => {
      api.runList = [summary('r1', 'running')];
      api.details.set('r1', detail('r1', 'running', [stepRun('train_lr', 'running')]));
    });
    const view = attach(new PipelineView(state, source));
    const cells: number[] = [];
    state.cellRequested.connect((_, i) => cells.push(i));
    node(view, 'train_lr').dispatchEvent(new MouseEvent('click', { bubbles: true }));
    expect(cells).toEqual([9]);
    expect(view.selected).toBe('train_lr');
    expect(node(view, 'train_lr').getAttribute('class')).toContain('nbscale-selected');
    // still running: its status, no fetch yet
    expect(view.node.querySelector('.nbscale-pipeline-detail')!.textContent).toContain('running');
    expect(source.asked).toEqual([]);
    state.handleEvent({ type: 'step', run_id: 'r1', step: 'train_lr', status: 'succeeded' });
    await flush();
    expect(source.asked).toEqual(['iris.ipynb r1 train_lr']);
    const img = view.node.querySelector('.nbscale-pipeline-detail img')!;
    expect(img.getAttribute('src')).toBe('/img/r1/train_lr/train_lr-cell9-1.png');
    // the same finished step is not fetched again on every change
    state.handleEvent({ type: 'step', run_id: 'r1', step: 'evaluate', status: 'running' });
    await flush();
    expect(source.asked).toHaveLength(1);
    view.dispose();
    state.dispose();
  });

  it('says when there is no run yet, and when no notebook is open', async () => {
    const { state } = await loaded();
    const view = attach(new PipelineView(state, new FakeSource()));
    const pane = view.node.querySelector('.nbscale-pipeline-detail') as HTMLElement;
    expect(pane.hidden).toBe(true); // the drawing has the whole width until a step is chosen
    view.selectStep('load');
    expect(pane.hidden).toBe(false);
    expect(view.node.querySelector('.nbscale-pipeline-detail')!.textContent).toContain('no run yet');
    await state.setPath(null);
    expect(view.node.textContent).toContain('Open a notebook');
    expect(view.selected).toBeNull();
    view.dispose();
    state.dispose();
  });
});
