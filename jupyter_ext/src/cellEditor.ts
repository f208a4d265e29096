/**
 * The cell editor (like Kale's): a dialog with a role picker, the step name with completion,
 * `after:` as a list of the notebook's steps, resources, image, retries, cache and timeout. It
 * writes the tags of tags.ts `tagsOf` only, and only once the compiler would accept them.
 */
// type-only: the dialog functions come in as an argument, so jest can load this module
import type { Dialog, showDialog } from '@jupyterlab/apputils';
import type { ICellModel } from '@jupyterlab/cells';
import type { Notebook } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { h } from './dom';
import {
  defaultStepName,
  ICellTagModel,
  ILayoutCell,
  ITagProblem,
  parseTags,
  RESOURCE_KEYS,
  Role,
  ROLES,
  layoutSteps,
  stepConflicts,
  tagsOf,
  takesStepName,
  takesStepOptions,
  unknownTags,
  validateModel,
  withRole
} from './tags';

/** What the editor knows of the notebook around the cell. */
export interface ICellEditorContext {
  /** The notebook's step names, in order (completion and the `after:` list). */
  steps: readonly string[];
  /** Why these tags on this cell clash with the rest of the notebook (duplicate step, ...). */
  conflicts?: (tags: readonly string[]) => string[];
}

/** The context for cell `index` of a notebook at `path` with these cells. */
export function notebookContext(cells: readonly ILayoutCell[], index: number, path: string): ICellEditorContext {
  const defaultName = defaultStepName(path);
  return {
    steps: layoutSteps(cells, defaultName).steps.map(s => s.name),
    conflicts: tags => stepConflicts(cells, index, tags, defaultName)
  };
}

/** The context for a cell of a notebook widget (its path names the default step). */
export function cellEditorContext(notebook: Notebook, cell: ICellModel, path: string): ICellEditorContext {
  const cells: ILayoutCell[] = [];
  const models = notebook.model?.cells;
  let index = -1;
  for (let i = 0; models && i < models.length; i++) {
    const model = models.get(i);
    index = model === cell ? i : index;
    cells.push({ type: model.type, tags: model.getMetadata('tags') as string[] | undefined, source: model.sharedModel.getSource() });
  }
  return notebookContext(cells, index, path);
}

const ROLE_LABELS: Record<string, string> = {
  '': 'none: part of the step above',
  step: 'step: starts a step',
  imports: 'imports: added to every step',
  functions: 'functions: definitions for every step',
  parameters: 'parameters: pipeline parameters',
  metrics: 'metrics: run metrics',
  skip: 'skip: left out of the pipeline'
};

const FIELD_HINTS: Record<string, string> = {
  cpu: '2, 0.5 or 500m',
  memory: '512Mi, 4Gi',
  gpu: '1',
  image: 'python:3.11-slim',
  retries: '0',
  timeout: '90s, 30m, 1h30m'
};

let editorCount = 0;

/** The editor's form; `tags` and `problems` follow what is typed. */
export class CellTagEditor {
  readonly node: HTMLFormElement;
  private readonly _start: ICellTagModel;
  private readonly _fields = new Map<string, HTMLInputElement | HTMLSelectElement>();
  private readonly _after = new Map<string, HTMLInputElement>();
  private readonly _other: string[];
  private readonly _stepPart: HTMLElement;
  private readonly _optionsPart: HTMLFieldSetElement;
  private readonly _preview: HTMLElement;
  private readonly _errors: HTMLElement;
  private readonly _id = `nbscale-cell-editor-${++editorCount}`;

  constructor(
    tags: readonly string[] | null | undefined,
    private readonly _context: ICellEditorContext = { steps: [] }
  ) {
    this._start = parseTags(tags);
    this._other = [...this._start.other];
    this.node = h('form', { className: 'nbscale-cell-editor', 'aria-label': 'Pipeline tags of the cell' });
    this.node.addEventListener('submit', ev => ev.preventDefault());
    const role = this._select('role', [['', ROLE_LABELS['']], ...ROLES.map(r => [r, ROLE_LABELS[r]] as [string, string])], this._start.role ?? '');
    this._stepPart = this._stepName();
    this._optionsPart = this._options();
    this._preview = h('code', { className: 'nbscale-cell-editor-preview' });
    this._errors = h('ul', { className: 'nbscale-cell-editor-errors', role: 'alert' });
    this.node.append(
      this._row('Role', role),
      this._stepPart,
      this._optionsPart,
      this._otherTags(),
      h('div', { className: 'nbscale-cell-editor-tags' }, 'Tags: ', this._preview),
      this._errors
    );
    this.node.addEventListener('input', () => this.update());
    this.node.addEventListener('change', () => this.update());
    this.update();
  }

  /** The model as the fields stand (fields the role cannot carry are left out). */
  get model(): ICellTagModel {
    const value = (key: string) => this._fields.get(key)?.value.trim() ?? '';
    const role = (value('role') || null) as Role | null;
    const after = [...this._after].filter(([, box]) => box.checked && !box.disabled).map(([name]) => name);
    const model: ICellTagModel = {
      ...this._start,
      role,
      step: value('step'),
      after,
      resources: { cpu: value('cpu'), memory: value('memory'), gpu: value('gpu') },
      image: value('image'),
      retries: value('retries'),
      cache: value('cache') as ICellTagModel['cache'],
      timeout: value('timeout'),
      other: [...this._other],
      dropped: []
    };
    return withRole(model, role);
  }

  /** The tags the editor would write. */
  get tags(): string[] {
    return tagsOf(this.model);
  }

  /** What the compiler would refuse in those tags; empty when they can be written. */
  get problems(): ITagProblem[] {
    const tags = this.tags;
    const conflicts = (this._context.conflicts?.(tags) ?? []).map(message => ({ field: 'step' as const, message }));
    return [...validateModel(this.model), ...conflicts];
  }

  /** Show the fields the role takes, the tags to be written and the problems. */
  update(): void {
    const model = this.model;
    this._stepPart.hidden = !takesStepName(model.role);
    (this._fields.get('step') as HTMLInputElement).required = model.role === 'step';
    this._optionsPart.hidden = !takesStepOptions(model.role);
    this._optionsPart.disabled = !takesStepOptions(model.role);
    for (const [name, box] of this._after) {
      box.disabled = name === model.step; // a step cannot come after itself
    }
    this._preview.textContent = this.tags.join('  ') || '(none)';
    const problems = this.problems;
    for (const [key, field] of this._fields) {
      const bad = problems.some(p => p.field === key);
      field.classList.toggle('jp-mod-error', bad);
      field.setAttribute('aria-invalid', bad ? 'true' : 'false');
    }
    this._errors.replaceChildren(...problems.map(p => h('li', {}, p.message)));
    // JupyterLab's dialog keeps Apply disabled while a .jp-mod-error is inside it; it looks on
    // `input` events, before ours ran: tell it again (a non-bubbling event reaches its listener).
    this._errors.classList.toggle('jp-mod-error', problems.length > 0);
    this._errors.dispatchEvent(new Event('input'));
  }

  private _row(label: string, field: HTMLElement, hint?: string): HTMLElement {
    const id = `${this._id}-${field.getAttribute('name')}`;
    field.id = id;
    return h(
      'div',
      { className: 'nbscale-cell-editor-row' },
      h('label', { for: id }, label),
      field,
      hint ? h('span', { className: 'nbscale-muted' }, hint) : null
    );
  }

  private _select(name: string, options: [string, string][], value: string): HTMLSelectElement {
    const select = h('select', { name, className: 'jp-mod-styled' }, ...options.map(([v, label]) => h('option', { value: v }, label)));
    select.value = value;
    this._fields.set(name, select);
    return select;
  }

  private _input(name: string, value: string, attrs: Record<string, string> = {}): HTMLInputElement {
    const input = h('input', { name, type: 'text', spellcheck: 'false', placeholder: FIELD_HINTS[name] ?? null, ...attrs });
    input.value = value;
    this._fields.set(name, input);
    return input;
  }

  private _stepName(): HTMLElement {
    const listId = `${this._id}-steps`;
    const names = h('datalist', { id: listId }, ...this._context.steps.map(s => h('option', { value: s })));
    const input = this._input('step', this._start.step, { list: listId, placeholder: 'train', autocomplete: 'off' });
    const row = this._row('Step name', input);
    row.appendChild(names);
    return row;
  }

  private _options(): HTMLFieldSetElement {
    const s = this._start;
    const targets = [...this._context.steps, ...s.after.filter(a => !this._context.steps.includes(a))];
    const boxes = targets.map(name => {
      const box = h('input', { type: 'checkbox', name: 'after', value: name });
      box.checked = s.after.includes(name);
      this._after.set(name, box);
      return h('label', { className: 'nbscale-cell-editor-after' }, box, name);
    });
    const cache = this._select('cache', [['', 'default (on)'], ['on', 'on'], ['off', 'off']], s.cache);
    return h(
      'fieldset',
      { className: 'nbscale-cell-editor-options' },
      h('legend', {}, 'Step options'),
      h(
        'div',
        { className: 'nbscale-cell-editor-row', role: 'group', 'aria-label': 'Runs after' },
        h('span', { className: 'nbscale-cell-editor-label' }, 'Runs after'),
        boxes.length ? h('div', { className: 'nbscale-cell-editor-after-list' }, ...boxes) : h('span', { className: 'nbscale-muted' }, 'no other steps')
      ),
      ...RESOURCE_KEYS.map(key => this._row(key === 'gpu' ? 'GPUs' : key === 'cpu' ? 'CPUs' : 'Memory', this._input(key, s.resources[key]))),
      this._row('Image', this._input('image', s.image)),
      this._row('Retries', this._input('retries', s.retries, { inputmode: 'numeric' })),
      this._row('Cache', cache),
      this._row('Timeout', this._input('timeout', s.timeout))
    );
  }

  /** Tags of other tools stay; unknown ones are flagged and can be removed here. */
  private _otherTags(): HTMLElement {
    const part = h('div', { className: 'nbscale-cell-editor-other' });
    const unknown = new Set(unknownTags(this._start));
    const render = () => {
      part.replaceChildren();
      if (this._start.dropped.length) {
        part.appendChild(h('p', { className: 'nbscale-muted' }, `Removed (not valid here): ${this._start.dropped.join(', ')}`));
      }
      if (!this._other.length) {
        return;
      }
      const chips = this._other.map(tag => {
        const remove = h('button', { type: 'button', className: 'nbscale-link-button', 'aria-label': `Remove tag ${tag}` }, '×');
        remove.addEventListener('click', () => {
          this._other.splice(this._other.indexOf(tag), 1);
          render();
          this.update();
        });
        return h(
          'span',
          { className: `nbscale-tag${unknown.has(tag) ? ' nbscale-cell-editor-unknown' : ''}`, title: unknown.has(tag) ? 'nbscale reports this tag as unknown-tag' : 'another tool\'s tag: kept' },
          tag,
          remove
        );
      });
      part.append(h('span', { className: 'nbscale-cell-editor-label' }, 'Other tags (kept)'), ...chips);
    };
    render();
    return part;
  }
}

/** JupyterLab's dialog functions (from @jupyterlab/apputils). */
export interface IDialogs {
  showDialog: typeof showDialog;
  Dialog: typeof Dialog;
}

/** The dialog's body: the editor as a widget with the value JupyterLab's dialog returns. */
export class CellEditorBody extends Widget {
  constructor(readonly editor: CellTagEditor) {
    super({ node: editor.node });
  }

  getValue(): string[] {
    return this.editor.tags;
  }

  protected onAfterAttach(msg: Parameters<Widget['processMessage']>[0]): void {
    super.onAfterAttach(msg);
    this.editor.update(); // sets the Apply button's state now that the dialog listens
  }
}

/**
 * Edit a cell's pipeline tags in a dialog. Resolves with the tags to write, or null when the
 * dialog was cancelled.
 */
export async function editCellTags(
  tags: readonly string[] | null | undefined,
  context: ICellEditorContext,
  dialogs: IDialogs,
  title = 'Pipeline step of this cell'
): Promise<string[] | null> {
  const { showDialog, Dialog } = dialogs;
  const editor = new CellTagEditor(tags, context);
  const result = await showDialog({
    title,
    body: new CellEditorBody(editor),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Apply' })],
    focusNodeSelector: 'select[name="role"]'
  });
  if (!result.button.accept) {
    return null;
  }
  const problems = editor.problems;
  if (problems.length) {
    throw new Error(problems.map(p => p.message).join('\n'));
  }
  return editor.tags;
}
