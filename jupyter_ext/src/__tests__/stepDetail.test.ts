import { renderStepDetail, warningPlace } from '../stepDetail';
import { IStepDetail } from '../wire';
import { stepRun } from './fixtures';

afterEach(() => {
  document.body.innerHTML = '';
});

/** A finished step's detail as jupyter_ext/stepdetail.py sends it. */
function trainDetail(extra: Partial<IStepDetail> = {}): IStepDetail {
  return {
    ...stepRun('train_lr', 'succeeded', { duration_s: 1.5, attempts: 2, stale: ['C changed'] }),
    run_id: 'r1',
    cells: [
      {
        cell: 9,
        warnings: [{ cell: 9, line: null, category: 'ConvergenceWarning', message: 'lbfgs failed to converge', where: 'sklearn/_logistic.py:469' }],
        outputs: [
          { type: 'stream', name: 'stdout', text: 'fitting <b>now</b>\n' },
          { type: 'text', text: "LogisticRegression(C=1.0)" },
          { type: 'image', mime: 'image/png', file: 'train_lr-cell9-1.png' },
          { type: 'other', mimes: ['text/html'] }
        ]
      }
    ],
    inputs: [
      { name: 'X_train', from: 'split', bytes: 2048 },
      { name: 'C', from: null, bytes: null }
    ],
    outputs: [{ name: 'lr', bytes: 1536, marshaller: 'pickle' }],
    ...extra
  };
}

const urls = { imageUrl: (file: string) => `/files/${file}` };

describe('Step detail', () => {
  it('shows status, duration, attempts and why the step re-ran', () => {
    const el = renderStepDetail(trainDetail(), urls);
    expect(el.getAttribute('data-status')).toBe('succeeded');
    const fact = (k: string) => el.querySelector(`dd[data-fact="${k}"]`)!.textContent;
    expect(fact('status')).toBe('succeeded');
    expect(fact('duration')).toBe('1.50 s');
    expect(fact('attempts')).toBe('2');
    expect(fact('re-ran because')).toBe('C changed');
    const cached = renderStepDetail(trainDetail({ cached: true, status: 'cached', stale: [] }), urls);
    expect(cached.querySelector('dd[data-fact="result"]')!.textContent).toBe('reused from the cache');
  });

  it('lists inputs with where they come from and sizes, and outputs', () => {
    const el = renderStepDetail(trainDetail(), urls);
    const rows = Array.from(el.querySelectorAll('.nbscale-step-values tbody tr')).map(r =>
      Array.from(r.querySelectorAll('td')).map(td => td.textContent)
    );
    expect(rows).toEqual([
      ['in', 'X_train', 'split', '2.00 KiB'],
      ['in', 'C', 'parameter', '—'],
      ['out', 'lr', '', '1.50 KiB']
    ]);
  });

  it("shows each cell's outputs as a kernel does, numbered 1-based, text as text, figures as images", () => {
    const cells: number[] = [];
    const el = renderStepDetail(trainDetail(), { ...urls, onCell: i => cells.push(i) });
    const cell = el.querySelector('.nbscale-cell-outputs')!;
    expect(cell.getAttribute('data-cell')).toBe('9');
    expect(cell.querySelector('.nbscale-cell-label')!.textContent).toBe('Cell 10');
    const kinds = Array.from(cell.querySelectorAll('[data-output]')).map(o => o.getAttribute('data-output'));
    expect(kinds).toEqual(['warning', 'stream', 'text', 'image', 'other']);
    expect(cell.querySelector('[data-output="warning"]')!.textContent).toBe(
      'ConvergenceWarning: lbfgs failed to converge (sklearn/_logistic.py:469)'
    );
    const stream = cell.querySelector('[data-output="stream"]')!;
    expect(stream.textContent).toBe('fitting <b>now</b>\n');
    expect(stream.querySelector('b')).toBeNull();
    expect(cell.querySelector('img')!.getAttribute('src')).toBe('/files/train_lr-cell9-1.png');
    expect(cell.querySelector('[data-output="other"]')!.textContent).toBe('[text/html output]');
    (cell.querySelector('.nbscale-cell-label') as HTMLElement).click();
    expect(cells).toEqual([9]);
  });

  it('shows the traceback of a failed step, and its cell 1-based', () => {
    const failed = trainDetail({
      status: 'failed',
      error: { cell: 9, line: 2, ename: 'ValueError', evalue: 'bad', traceback: '\u001b[31mTraceback\u001b[0m\nValueError: bad' }
    });
    const el = renderStepDetail(failed, urls);
    expect(el.querySelector('.nbscale-step-error .nbscale-error')!.textContent).toBe('ValueError: bad (cell 10, line 2)');
    expect(el.querySelector('.nbscale-traceback')!.textContent).toBe('Traceback\nValueError: bad');
    const reason = renderStepDetail(trainDetail({ status: 'upstream_failed', error: { cell: null, line: null, ename: '', evalue: 'upstream failed: split', traceback: '' } }), urls);
    expect(reason.querySelector('.nbscale-traceback')).toBeNull();
    expect(reason.querySelector('.nbscale-step-error')!.textContent).toBe('upstream failed: split');
  });

  it("falls back to the stored streams when an engine kept no cells, and says when it showed nothing", () => {
    const plain = renderStepDetail(trainDetail({ cells: [], stdout: 'hello\n', stderr: 'careful\n' }), urls);
    expect(Array.from(plain.querySelectorAll('pre[data-output="stream"]')).map(p => p.textContent)).toEqual(['hello\n', 'careful\n']);
    const nothing = renderStepDetail(trainDetail({ cells: [] }), urls);
    expect(nothing.textContent).toContain('The step showed nothing.');
  });

  it("names a warning's place in the notebook 1-based, a library's as its file and line", () => {
    expect(warningPlace({ cell: 12, line: 3, category: 'UserWarning', message: 'm', where: 'cell 12, line 3' })).toBe('cell 13, line 3');
    expect(warningPlace({ cell: 12, line: null, category: 'UserWarning', message: 'm', where: 'cell 12' })).toBe('cell 13');
    expect(warningPlace({ cell: 7, line: null, category: 'W', message: 'm', where: '/venv/sklearn/x.py:4' })).toBe('/venv/sklearn/x.py:4');
  });
});
