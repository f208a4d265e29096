import { CompareView, comparisonTables, toCsv } from '../compareView';
import { driftTable, IDriftRow } from '../driftTable';
import { IComparison } from '../wire';
import { attach } from './fixtures';

const HOSTILE = '<img src=x onerror="window.hacked=1">\u001b[31m';

/** The drift rows kernels/drift.py `comparison_drift` makes: one column drifted, one not, one gone. */
function driftRows(): IDriftRow[] {
  const where = { run: 2, run_id: 'bbbbbbbb2222', step: 'make', value: 'df' };
  return [
    { ...where, column: HOSTILE, status: 'drifted', test: 'ks', score: 0.9, p_value: 1e-20, threshold: 0.05, psi: 6.1, note: null },
    { ...where, column: 'steady', status: 'ok', test: 'wasserstein', score: 0.01, p_value: null, threshold: 0.1, psi: 0.001, note: null },
    { ...where, column: 'gone', status: 'missing' }
  ];
}

/** Two runs of a notebook, as kernels/compare.py makes the model, with the `drift` section given. */
function withDrift(rows: IDriftRow[] | undefined): IComparison {
  const run = (id: string) => ({
    run_id: id,
    notebook: 'shifting.ipynb',
    other_notebook: false,
    pipeline: 'shifting',
    engine: 'local',
    status: 'succeeded',
    created: '2026-12-02T07:00:00+00:00',
    started: '2026-12-02T07:00:00+00:00',
    finished: '2026-12-02T07:00:01+00:00',
    duration_s: 1
  });
  const model = { notebook: 'shifting.ipynb', runs: [run('aaaaaaaa1111'), run('bbbbbbbb2222')], parameters: [], steps: [], metrics: [] };
  return { ...model, drift: rows } as IComparison;
}

afterEach(() => {
  document.body.innerHTML = '';
});

describe('drift table', () => {
  it('has one row per column, the drifted ones marked, missing numbers as dashes', () => {
    const table = driftTable({ drift: driftRows() })!;
    expect(table.title).toBe('Data drift (1 of 2 columns drifted)');
    expect(table.rowClasses).toEqual(['nbscale-drifted', '', '']);
    expect(table.rows[0].map(c => c.text).slice(0, 6)).toEqual(['#2 bbbbbbbb', 'make.df', HOSTILE, 'drifted', 'ks', '0.9']);
    expect(table.rows[0][3].className).toBe('nbscale-worse');
    expect(table.rows[1][6].text).toBe('–');
    expect(table.rows[2].map(c => c.text).slice(3, 6)).toEqual(['missing', '–', '–']);
  });

  it('is left out when the runs handed on no frames or arrays', () => {
    expect(driftTable({ drift: [] })).toBeNull();
    expect(driftTable({})).toBeNull();
    expect(comparisonTables(withDrift(undefined)).map(t => t.id)).toEqual(['runs', 'parameters', 'steps', 'metrics']);
  });

  it('is a section of the comparison view, shown as text and exported as CSV', () => {
    const view = new CompareView(['aaaaaaaa1111', 'bbbbbbbb2222']);
    attach(view);
    view.setModel(withDrift(driftRows()));
    const section = view.node.querySelector('.nbscale-compare-drift')!;
    expect(section.querySelector('h3')!.textContent).toBe('Data drift (1 of 2 columns drifted)');
    expect(section.querySelector('img')).toBeNull();
    expect((window as unknown as { hacked?: number }).hacked).toBeUndefined();
    expect(section.querySelector('tr.nbscale-drifted td:nth-child(3)')!.textContent).toBe(HOSTILE);
    view.sortBy('drift', 5);
    const scores = [...section.ownerDocument.querySelectorAll('.nbscale-compare-drift tbody tr td:nth-child(6)')].map(td => td.textContent);
    expect(scores).toEqual(['0.01', '0.9', '–']);
    const csv = toCsv(comparisonTables(withDrift(driftRows())));
    expect(csv).toContain('Data drift (1 of 2 columns drifted)\r\nrun,value,column,status,test,score,p-value,threshold,PSI,note\r\n');
    expect(csv).toContain('#2,make.df,"<img src=x onerror=""window.hacked=1"">\u001b[31m",drifted,ks,0.9,1e-20,0.05,6.1,');
  });
});
