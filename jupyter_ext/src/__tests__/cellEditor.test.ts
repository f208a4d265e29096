import { CellTagEditor, notebookContext } from '../cellEditor';
import { stepConflicts } from '../tags';

function set(editor: CellTagEditor, name: string, value: string): void {
  const field = editor.node.querySelector(`[name="${name}"]`) as HTMLInputElement | HTMLSelectElement;
  field.value = value;
  field.dispatchEvent(new Event('input', { bubbles: true }));
}

function check(editor: CellTagEditor, step: string, on = true): void {
  const box = editor.node.querySelector(`input[name="after"][value="${step}"]`) as HTMLInputElement;
  box.checked = on;
  box.dispatchEvent(new Event('change', { bubbles: true }));
}

const steps = ['load', 'split', 'train'];

describe('the cell editor', () => {
  it('turns a skip cell into a step: the skip tag goes (the misplaced-tag bug)', () => {
    const editor = new CellTagEditor(['skip', 'hide-input'], { steps });
    expect((editor.node.querySelector('[name="role"]') as HTMLSelectElement).value).toBe('skip');
    expect((editor.node.querySelector('.nbscale-cell-editor-options') as HTMLFieldSetElement).hidden).toBe(true);
    set(editor, 'role', 'step');
    set(editor, 'step', 'explore');
    expect(editor.tags).toEqual(['step:explore', 'hide-input']);
    expect(editor.problems).toEqual([]);
  });

  it('writes step, after and resources tags, one value a tag', () => {
    const editor = new CellTagEditor(['step:evaluate'], { steps });
    check(editor, 'load');
    check(editor, 'train');
    set(editor, 'cpu', '2');
    set(editor, 'memory', '4Gi');
    set(editor, 'retries', '1');
    set(editor, 'cache', 'off');
    set(editor, 'timeout', '30m');
    expect(editor.tags).toEqual([
      'step:evaluate', 'after:load', 'after:train', 'resources:cpu=2', 'resources:memory=4Gi', 'retries:1', 'cache:off', 'timeout:30m'
    ]);
    expect(editor.node.querySelector('.nbscale-cell-editor-preview')!.textContent).toContain('after:train');
  });

  it('offers the notebook\'s steps as name completion and as after: choices, never the step itself', () => {
    const editor = new CellTagEditor(['step:split', 'after:load'], { steps });
    const options = Array.from(editor.node.querySelectorAll('datalist option')).map(o => (o as HTMLOptionElement).value);
    expect(options).toEqual(steps);
    const own = editor.node.querySelector('input[name="after"][value="split"]') as HTMLInputElement;
    expect(own.disabled).toBe(true);
    expect((editor.node.querySelector('input[name="after"][value="load"]') as HTMLInputElement).checked).toBe(true);
  });

  it('shows problems, marks the fields and the dialog error class, and clears them when fixed', () => {
    const editor = new CellTagEditor([], { steps });
    set(editor, 'role', 'step');
    const errors = editor.node.querySelector('.nbscale-cell-editor-errors')!;
    expect(errors.textContent).toMatch(/needs a name/);
    expect(errors.classList.contains('jp-mod-error')).toBe(true);
    set(editor, 'step', '2x');
    set(editor, 'timeout', 'soon');
    expect(editor.problems.map(p => p.field)).toEqual(['step', 'timeout']);
    expect(editor.node.querySelector('[name="timeout"]')!.getAttribute('aria-invalid')).toBe('true');
    set(editor, 'step', 'x2');
    set(editor, 'timeout', '90s');
    expect(editor.problems).toEqual([]);
    expect(errors.classList.contains('jp-mod-error')).toBe(false);
  });

  it('refuses a step name the notebook already uses further up', () => {
    const cells = [
      { type: 'code', tags: ['step:load'], source: 'x = 1' },
      { type: 'code', tags: ['step:train'], source: 'x = 2' },
      { type: 'code', tags: ['skip'], source: 'x' }
    ];
    const editor = new CellTagEditor(['skip'], { steps: ['load', 'train'], conflicts: tags => stepConflicts(cells, 2, tags) });
    set(editor, 'role', 'step');
    set(editor, 'step', 'load');
    expect(editor.problems[0].message).toMatch(/already starts at cell 1/);
    set(editor, 'step', 'train'); // right below train's cell: continues it
    expect(editor.problems).toEqual([]);
  });

  it('drops step options when the role cannot carry them, and brings them back when it can', () => {
    const editor = new CellTagEditor(['step:t', 'resources:gpu=1', 'mine'], { steps });
    set(editor, 'role', 'parameters');
    expect(editor.tags).toEqual(['parameters', 'mine']);
    set(editor, 'role', 'step');
    expect(editor.tags).toEqual(['step:t', 'resources:gpu=1', 'mine']);
    set(editor, 'role', '');
    expect(editor.tags).toEqual(['resources:gpu=1', 'mine']);
  });

  it('keeps other tools\' tags, flags unknown ones and lets them be removed', () => {
    const editor = new CellTagEditor(['imports', 'hide-input', 'paramters'], { steps });
    const unknown = editor.node.querySelector('.nbscale-cell-editor-unknown')!;
    expect(unknown.textContent).toContain('paramters');
    (unknown.querySelector('button') as HTMLButtonElement).click();
    expect(editor.tags).toEqual(['imports', 'hide-input']);
  });

  it('keeps markup in tags as text', () => {
    const editor = new CellTagEditor(['<img src=x onerror=alert(1)>'], { steps: ['<b>s</b>'] });
    expect(editor.node.querySelector('img')).toBeNull();
    expect(editor.node.querySelector('b')).toBeNull();
  });
});

describe('the notebook around the cell', () => {
  it('lists its steps (the default one named after the notebook) and checks conflicts', () => {
    const cells = [
      { type: 'code', tags: null, source: 'import x\ny = 1' },
      { type: 'code', tags: ['step:train'], source: 'z = y' },
      { type: 'code', tags: ['skip'], source: 'z' }
    ];
    const context = notebookContext(cells, 2, 'work/my nb.ipynb');
    expect(context.steps).toEqual(['my_nb', 'train']);
    expect(context.conflicts!(['step:my_nb'])[0]).toMatch(/already starts at cell 1/);
    expect(context.conflicts!(['step:eval', 'after:my_nb'])).toEqual([]);
  });
});
