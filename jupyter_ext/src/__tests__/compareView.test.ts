import { comparisonTables, CompareView, csvCell, csvFileName, sortRows, toCsv } from '../compareView';
import { IComparison } from '../wire';
import { attach } from './fixtures';

/** A comparison as kernels/compare.py makes it: alpha changed, `scale` re-ran, loss got worse. */
export function comparison(): IComparison {
  const run = (id: string, other = false, duration: number | null = 1.5) => ({
    run_id: id,
    notebook: other ? 'other.ipynb' : 'sweep.ipynb',
    other_notebook: other,
    pipeline: 'sweep',
    engine: 'local',
    status: 'succeeded',
    created: '2026-11-28T10:00:00+00:00',
    started: '2026-11-28T10:00:00+00:00',
    finished: '2026-11-28T10:00:01.5+00:00',
    duration_s: duration
  });
  const step = (status: string, why: string, duration: number | null) => ({
    status,
    duration_s: duration,
    cached: status === 'cached',
    ran: status === 'succeeded',
    hash: 'h',
    stale: [],
    why
  });
  return {
    notebook: 'sweep.ipynb',
    runs: [run('aaaaaaaa1111'), run('bbbbbbbb2222', false, 0.5)],
    parameters: [
      { name: 'alpha', values: [1, 2], set: [true, true], changed: true },
      { name: 'beta', values: [10, 10], set: [true, true], changed: false }
    ],
    steps: [
      { name: 'load', runs: [step('succeeded', 'no stored result', 0.2), step('cached', 'reused the stored result', null)], reran: false },
      { name: 'scale', runs: [step('succeeded', 'no stored result', 0.3), step('succeeded', 'its code, the parameters it reads or its inputs changed', 0.1)], reran: true }
    ],
    metrics: [
      { name: 'acc', direction: 'max', values: [0.9, 0.95], deltas: [0, 0.05], relative: [0, 0.0556], better: [null, true], changed: true },
      { name: 'loss', direction: 'min', values: [1.9, 3.8], deltas: [0, 1.9], relative: [0, 1], better: [null, false], changed: true }
    ]
  };
}

afterEach(() => {
  document.body.innerHTML = '';
});

describe('comparison tables', () => {
  it('has runs, parameters, steps and metrics, the changed ones marked', () => {
    const [runs, params, steps, metrics] = comparisonTables(comparison());
    expect(runs.rows[0][0].text).toBe('#1 aaaaaaaa (reference)');
    expect(params.rowClasses).toEqual(['nbscale-changed', '']);
    expect(params.rows[0].map(c => c.text)).toEqual(['alpha', '1', '2']);
    expect(params.rows[0][2].className).toBe('nbscale-changed-value');
    expect(steps.rowClasses).toEqual(['', 'nbscale-reran']);
    expect(steps.columns[steps.columns.length - 1]).toBe('#2 bbbbbbbb: why');
    expect(steps.rows[1][steps.columns.length - 1].text).toContain('parameters it reads');
    expect(metrics.columns).toEqual(['metric', 'better', '#1 aaaaaaaa', '#2 bbbbbbbb', 'Δ #2 bbbbbbbb']);
    expect(metrics.rows[0][4].text).toBe('+0.05 (+5.6%)');
    expect(metrics.rows[0][4].className).toBe('nbscale-better');
    expect(metrics.rows[1][4].className).toBe('nbscale-worse');
    expect(metrics.rows[1][1].text).toBe('lower');
  });

  it('sorts numbers as numbers, empty cells last, stably', () => {
    const cell = (sort: number | string | null) => [{ text: String(sort), value: sort, sort }];
    const rows = [cell(10), cell(null), cell(9), cell(100)];
    expect(sortRows(rows, 0).map(r => r[0].sort)).toEqual([9, 10, 100, null]);
    expect(sortRows(rows, 0, true).map(r => r[0].sort)).toEqual([100, 10, 9, null]);
    expect(sortRows([cell('b2'), cell('b10'), cell('a')], 0).map(r => r[0].sort)).toEqual(['a', 'b2', 'b10']);
  });
});

describe('CSV', () => {
  it('quotes commas, quotes and line breaks', () => {
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('two\nlines')).toBe('"two\nlines"');
    expect(csvCell(' padded')).toBe('" padded"');
    expect(csvCell(null)).toBe('');
    expect(csvCell(NaN)).toBe('');
  });

  it('keeps a spreadsheet from running text as a formula', () => {
    expect(csvCell('=HYPERLINK("http://evil","x")')).toBe(`"'=HYPERLINK(""http://evil"",""x"")"`);
    expect(csvCell('+1')).toBe("'+1");
    expect(csvCell('-2+3')).toBe("'-2+3");
    expect(csvCell('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvCell('\t=1')).toBe("'\t=1");
    expect(csvCell(-0.5)).toBe('-0.5'); // a number is a number, never a formula
  });

  it('exports every table with raw numbers', () => {
    const model = comparison();
    model.parameters[0].name = '=cmd|calc';
    const csv = toCsv(comparisonTables(model));
    const lines = csv.split('\r\n');
    expect(lines[0]).toBe('Runs');
    expect(lines).toContain('Parameters');
    expect(lines).toContain("'=cmd|calc,1,2");
    expect(lines).toContain('acc,max,0.9,0.95,0.05');
    expect(csv.endsWith('\r\n')).toBe(true);
    expect(csvFileName(model)).toBe('nbscale-compare-aaaaaaaa-bbbbbbbb.csv');
  });
});

describe('CompareView', () => {
  it('renders the tables and sorts a column on a click', () => {
    const view = attach(new CompareView(['aaaaaaaa1111', 'bbbbbbbb2222']));
    expect(view.node.textContent).toContain('Comparing 2 runs');
    view.setModel(comparison());
    expect(view.node.querySelector('h2')!.textContent).toBe('2 runs of sweep.ipynb');
    expect(view.node.querySelector('[data-table="parameters"] tr.nbscale-changed')!.textContent).toContain('alpha');
    const metricNames = () => Array.from(view.node.querySelectorAll('[data-table="metrics"] tbody tr')).map(r => r.firstChild!.textContent);
    expect(metricNames()).toEqual(['acc', 'loss']);
    const deltaHeader = view.node.querySelectorAll<HTMLButtonElement>('[data-table="metrics"] th button')[4];
    deltaHeader.click();
    deltaHeader.click(); // again: descending
    expect(metricNames()).toEqual(['loss', 'acc']);
    expect(view.node.querySelectorAll('[data-table="metrics"] th')[4].getAttribute('aria-sort')).toBe('descending');
    view.dispose();
  });

  it('flags a run of another notebook, and shows an error as text', () => {
    const model = comparison();
    model.runs[1] = { ...model.runs[1], notebook: 'other.ipynb', other_notebook: true };
    const view = attach(new CompareView(['a', 'b']));
    view.setModel(model);
    expect(view.node.querySelector('.nbscale-warning')!.textContent).toContain('another notebook: other.ipynb');
    expect(view.node.querySelector('[data-table="runs"] td.nbscale-other-notebook')!.textContent).toBe('other.ipynb (another notebook)');
    view.setError('<img src=x onerror=alert(1)>');
    expect(view.node.querySelector('img')).toBeNull();
    expect(view.node.textContent).toContain('<img src=x');
    view.dispose();
  });

  it('exports the CSV as a download', () => {
    const created: Blob[] = [];
    (URL as any).createObjectURL = (blob: Blob) => {
      created.push(blob);
      return 'blob:x';
    };
    (URL as any).revokeObjectURL = () => undefined;
    const view = attach(new CompareView(['a', 'b']));
    view.setModel(comparison());
    (view.node.querySelector('.nbscale-export-csv') as HTMLButtonElement).click();
    expect(created).toHaveLength(1);
    expect(created[0].type).toBe('text/csv');
    view.dispose();
  });
});
