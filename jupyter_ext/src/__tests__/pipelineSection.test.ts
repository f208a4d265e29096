import { diagnosticLocation, PipelineSection, sortDiagnostics } from '../pipelineSection';
import { PanelState } from '../state';
import { attach, detail, FakeApi, loaded, stepRun, summary } from './fixtures';

afterEach(() => {
  document.body.innerHTML = '';
});

describe('Pipeline section', () => {
  it('asks for a notebook when none is open', () => {
    const state = new PanelState({ api: new FakeApi() });
    const section = attach(new PipelineSection(state));
    expect(section.node.textContent).toContain('Open a notebook');
    section.dispose();
    state.dispose();
  });

  it('draws the DAG with the six steps of iris and says there are no problems', async () => {
    const { state } = await loaded();
    const section = attach(new PipelineSection(state));
    expect(section.node.querySelectorAll('svg.nbscale-dag .nbscale-dag-node')).toHaveLength(6);
    expect(section.node.textContent).toContain('6 steps');
    expect(section.node.textContent).toContain('No problems found');
    section.dispose();
    state.dispose();
  });

  it('colours the DAG with the shown run and selects the step cell on click', async () => {
    const { state } = await loaded(api => {
      api.runList = [summary('r1', 'running')];
      api.details.set('r1', detail('r1', 'running', [stepRun('load', 'succeeded'), stepRun('split', 'running')]));
    });
    const section = attach(new PipelineSection(state));
    const node = (name: string) => section.node.querySelector(`.nbscale-dag-node[data-step="${name}"]`)!;
    expect(node('load').getAttribute('data-status')).toBe('succeeded');
    expect(node('split').getAttribute('data-status')).toBe('running');
    expect(node('evaluate').getAttribute('data-status')).toBe('pending');
    const cells: number[] = [];
    state.cellRequested.connect((_, i) => cells.push(i));
    node('train_rf').dispatchEvent(new MouseEvent('click', { bubbles: true }));
    expect(cells).toEqual([10]);
    section.dispose();
    state.dispose();
  });

  it('lists diagnostics, errors first, and a click selects the cell', async () => {
    const { state } = await loaded(api => {
      api.pipelineModel.diagnostics = [
        { severity: 'warning', code: 'star-import', message: 'from x import * hides names', cell: 1, line: 1, col: 0, hint: null },
        {
          severity: 'error',
          code: 'undefined-name',
          message: "name 'undefined_thing' is not defined before it is used",
          cell: 11,
          line: 4,
          col: 6,
          hint: 'define it in an earlier step'
        }
      ];
    });
    const section = attach(new PipelineSection(state));
    const items = section.node.querySelectorAll('.nbscale-diagnostic');
    expect(items).toHaveLength(2);
    expect(items[0].getAttribute('data-code')).toBe('undefined-name');
    expect(items[0].textContent).toContain('cell 12, line 4'); // index 11, as JupyterLab numbers it
    expect(section.node.textContent).toContain('1 error');
    const cells: number[] = [];
    state.cellRequested.connect((_, i) => cells.push(i));
    (items[0] as HTMLElement).click();
    expect(cells).toEqual([11]);
    section.dispose();
    state.dispose();
  });

  it('shows a compile failure as text', async () => {
    const { state } = await loaded(api => {
      api.pipeline = async () => {
        throw new Error('<b>400</b> not a notebook');
      };
    });
    const section = attach(new PipelineSection(state));
    expect(section.node.querySelector('b')).toBeNull();
    expect(section.node.textContent).toContain('<b>400</b> not a notebook');
    section.dispose();
    state.dispose();
  });

  it('sorts and locates diagnostics', () => {
    const d = (severity: string, cell: number | null) => ({ severity, code: 'c', message: 'm', cell, line: null, col: null });
    expect(sortDiagnostics([d('info', 1), d('warning', 2), d('error', 5), d('error', 3)]).map(x => [x.severity, x.cell])).toEqual([
      ['error', 3],
      ['error', 5],
      ['warning', 2],
      ['info', 1]
    ]);
    expect(diagnosticLocation(d('error', null))).toBe('notebook');
    expect(diagnosticLocation({ ...d('error', 2), line: 3 })).toBe('cell 3, line 3');
    expect(diagnosticLocation(d('error', 0))).toBe('cell 1'); // the first cell is cell 1
  });
});
