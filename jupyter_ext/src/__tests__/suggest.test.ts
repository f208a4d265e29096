import { applySuggestion, cellNumbers, ISuggestCell, ISuggestion, showSuggestion, speedupText, staleReason, suggestionBody } from '../suggest';

const SOURCES = ['import time', 'n = 3', 'a = f(n)', 'b = g(n)', 'total = a + b'];

function proposal(overrides: Partial<ISuggestion> = {}): ISuggestion {
  return {
    path: 'work/plain.ipynb',
    steps: [
      { name: 'a', cells: [3], seconds: 1, after: [] },
      { name: 'b', cells: [4], seconds: 1, after: [] },
      { name: 'total', cells: [5, 6], seconds: 0.2, after: ['a', 'b'] }
    ],
    roles: { '1': 'imports', '2': 'parameters' },
    tags: { '1': ['imports'], '2': ['parameters'], '3': ['step:a'], '4': ['step:b', 'hide-input'], '5': ['step:total'], '6': [] },
    durations: 'estimate',
    total: 2.2,
    critical_path: 1.2,
    speedup: 1.833,
    notes: ['cell 6 stays with cell 5: it changes total, which cell 5 makes'],
    cell_count: 7,
    sources: { '1': SOURCES[0], '2': SOURCES[1], '3': SOURCES[2], '4': SOURCES[3], '5': SOURCES[4], '6': 'total += 1' },
    ...overrides
  };
}

interface IFakeCell extends ISuggestCell {
  tags: string[] | null;
}

function cells(): IFakeCell[] {
  const code = (source: string, tags: string[] | null = null): IFakeCell => {
    const cell: IFakeCell = { type: 'code', source, tags, setTags: t => (cell.tags = t.length ? t : null) };
    return cell;
  };
  const markdown: IFakeCell = { type: 'markdown', source: '# Title', tags: null, setTags: () => undefined };
  return [markdown, ...SOURCES.map(s => code(s)), code('total += 1', ['old'])];
}

describe('suggested steps', () => {
  it('numbers cells from 1 and says the speed-up against the sum', () => {
    expect(cellNumbers([3])).toBe('cell 4');
    expect(cellNumbers([5, 6])).toBe('cells 6, 7');
    expect(speedupText(proposal())).toBe('Critical path 1.20 of 2.20 units in all: expected speed-up 1.83× with enough workers');
    expect(speedupText(proposal({ durations: 'given' }))).toContain('of 2.20 s in all');
  });

  it('shows the steps, their cells, the roles and the notes', () => {
    const body = suggestionBody(proposal());
    const rows = Array.from(body.querySelectorAll('tr.nbscale-suggest-step')).map(r =>
      Array.from(r.querySelectorAll('td')).map(td => td.textContent)
    );
    expect(rows).toEqual([
      ['a', 'cell 4', '1.00', '–'],
      ['b', 'cell 5', '1.00', '–'],
      ['total', 'cells 6, 7', '0.20', 'a, b']
    ]);
    expect(Array.from(body.querySelectorAll('.nbscale-suggest-roles li')).map(li => li.textContent)).toEqual([
      "Cell 2 becomes 'imports'",
      "Cell 3 becomes 'parameters'"
    ]);
    expect(body.querySelector('.nbscale-suggest-speedup')!.textContent).toContain('expected speed-up 1.83×');
    expect(body.querySelector('.nbscale-suggest-notes')!.textContent).toContain('cell 6 stays with cell 5');
    expect(body.querySelector('.nbscale-suggest-stale')).toBeNull();
  });

  it('puts names, paths and notes in as text, never as HTML', () => {
    const evil = '<img src=x onerror="window.pwned=1">';
    const body = suggestionBody(
      proposal({ path: evil, notes: [evil], steps: [{ name: evil, cells: [3], seconds: 1, after: [evil] }], roles: { '1': evil } }),
      evil
    );
    expect(body.querySelector('img')).toBeNull();
    expect(body.textContent).toContain(evil);
    expect((window as unknown as { pwned?: number }).pwned).toBeUndefined();
  });

  it('writes every proposed tag, and removes tags the proposal leaves empty', () => {
    const notebook = cells();
    expect(staleReason(proposal(), notebook)).toBeNull();
    expect(applySuggestion(proposal(), notebook)).toBe(6);
    expect(notebook.map(c => c.tags)).toEqual([null, ['imports'], ['parameters'], ['step:a'], ['step:b', 'hide-input'], ['step:total'], null]);
  });

  it('refuses to apply once a code cell changed, moved, was added or removed, and changes nothing', () => {
    const edited = cells();
    edited[3].source = 'a = f(n) + 1';
    const added = [...cells(), { type: 'code', source: 'x', tags: null, setTags: () => undefined }];
    const moved = cells();
    [moved[3], moved[4]] = [moved[4], moved[3]];
    const retyped = cells();
    retyped[0].type = 'code';
    for (const notebook of [edited, added, moved, retyped]) {
      const reason = staleReason(proposal(), notebook);
      expect(reason).toMatch(/suggest steps again/);
      expect(() => applySuggestion(proposal(), notebook)).toThrow(/suggest steps again/);
      expect(notebook.slice(0, 6).map(c => c.tags)).toEqual([null, null, null, null, null, null]);
    }
    expect(staleReason(proposal(), edited)).toBe('Cell 4 differs from the code the proposal was made from. Save the notebook and suggest steps again.');
    // a markdown cell's text is not code: editing it does not stop Apply
    const prose = cells();
    prose[0].source = '# Another title';
    expect(staleReason(proposal(), prose)).toBeNull();
  });

  describe('the dialog', () => {
    const Dialog = {
      cancelButton: () => ({ label: 'Cancel', accept: false }),
      okButton: (o: { label: string }) => ({ label: o.label, accept: true })
    };

    function dialogs(accept: boolean, seen: { body?: HTMLElement; buttons?: string[] }) {
      return {
        Dialog,
        showDialog: async (options: { body: { node: HTMLElement }; buttons: { label: string }[] }) => {
          seen.body = options.body.node;
          seen.buttons = options.buttons.map(b => b.label);
          return { button: { accept }, value: null };
        }
      } as never;
    }

    it('applies on Apply inside one transaction', async () => {
      const notebook = cells();
      const seen: { body?: HTMLElement; buttons?: string[] } = {};
      let transactions = 0;
      const written = await showSuggestion(proposal(), () => notebook, dialogs(true, seen), change => {
        transactions++;
        change();
      });
      expect(written).toBe(6);
      expect(transactions).toBe(1);
      expect(seen.buttons).toEqual(['Cancel', 'Apply']);
      expect(notebook[3].tags).toEqual(['step:a']);
    });

    it('writes nothing on Cancel', async () => {
      const notebook = cells();
      expect(await showSuggestion(proposal(), () => notebook, dialogs(false, {}))).toBeNull();
      expect(notebook.every(c => c.tags === null || c.tags[0] === 'old')).toBe(true);
    });

    it('says in the dialog when the open notebook differs, and refuses Apply', async () => {
      const notebook = cells();
      notebook[4].source = 'b = g(n) * 2';
      const seen: { body?: HTMLElement } = {};
      await expect(showSuggestion(proposal(), () => notebook, dialogs(true, seen))).rejects.toThrow(/Cell 5 differs/);
      expect(seen.body!.querySelector('.nbscale-suggest-stale')!.textContent).toMatch(/Cell 5 differs/);
      expect(notebook[3].tags).toBeNull();
    });
  });
});
