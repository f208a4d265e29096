/**
 * The Run form: one typed, labelled input per pipeline parameter of the followed notebook,
 * pre-filled from its own values (PanelState.parameterForms), a visible and spoken mark on the
 * values that differ from the notebook's parameters cell, a reset per value and for all.
 */
import { button, h, replace } from './dom';
import { coerceParameter, isChanged, parameterKind, ParameterKind, parameterText } from './parameters';
import { PanelState } from './state';
import { IParameter } from './wire';

/** The short text of a default value ("42", "[64,32]", "''"). */
export function defaultText(p: IParameter): string {
  const text = parameterText(parameterKind(p), p.default);
  return text === '' ? "''" : text;
}

/** What the mark of a changed value says, visibly and to a screen reader. */
export function changedText(p: IParameter): string {
  return `changed · notebook: ${defaultText(p)}`;
}

interface IField {
  node: HTMLElement;
  input: HTMLInputElement;
}

export class ParameterForm {
  readonly node: HTMLFormElement;
  private readonly _invalid = new Set<string>();
  private readonly _count: HTMLElement;

  constructor(
    readonly state: PanelState,
    onSubmit: () => void
  ) {
    this.node = h('form', { className: 'nbscale-params', 'aria-label': 'Pipeline parameters' });
    this.node.addEventListener('submit', ev => {
      ev.preventDefault();
      onSubmit();
    });
    this._count = h('span', { className: 'nbscale-changed-count', 'aria-live': 'polite' });
  }

  /** Names of the parameters whose text is not a value of their type. */
  get invalid(): string[] {
    return [...this._invalid];
  }

  render(): void {
    const state = this.state;
    const pipeline = state.pipeline;
    replace(this.node);
    this._invalid.clear();
    this.node.dataset.notebook = state.path ?? '';
    if (!state.path) {
      this.node.appendChild(h('p', { className: 'nbscale-empty' }, 'Open a notebook to run it.'));
      return;
    }
    if (!pipeline) {
      return;
    }
    if (!pipeline.parameters.length) {
      this.node.appendChild(h('p', { className: 'nbscale-muted' }, 'No parameters (tag a cell "parameters" to add some).'));
      return;
    }
    for (const p of pipeline.parameters) {
      this.node.appendChild(this._field(p).node);
    }
    const reset = button('Reset to defaults', {
      kind: 'minimal',
      className: 'nbscale-reset-all',
      title: "Every value back to the notebook's parameters cell",
      onClick: () => state.resetParameters()
    });
    // an invisible submit button makes Enter in a field start the run
    const submit = h('button', { type: 'submit', className: 'nbscale-hidden', tabindex: -1, 'aria-hidden': 'true' }, 'Run');
    this.node.appendChild(h('div', { className: 'nbscale-params-footer' }, this._count, reset, submit));
    this._renderCount();
  }

  private _renderCount(): void {
    const parameters = this.state.pipeline?.parameters ?? [];
    const n = parameters.filter(p => isChanged(p, this.state.parameterValues)).length;
    this._count.textContent = n ? `${n} changed from the notebook` : '';
  }

  private _input(p: IParameter, kind: ParameterKind, id: string, value: unknown): HTMLInputElement {
    const described = `${id}-changed ${id}-error`;
    if (kind === 'bool') {
      const box = h('input', { type: 'checkbox', id, name: p.name, 'aria-describedby': described });
      box.checked = !!value;
      return box;
    }
    const input = h('input', {
      id,
      name: p.name,
      type: kind === 'int' || kind === 'float' ? 'number' : 'text',
      step: kind === 'int' ? '1' : kind === 'float' ? 'any' : null,
      spellcheck: 'false',
      autocomplete: 'off',
      'aria-describedby': described,
      className: kind === 'json' ? 'nbscale-mono' : null
    });
    input.value = parameterText(kind, value);
    return input;
  }

  private _field(p: IParameter): IField {
    const state = this.state;
    const kind = parameterKind(p);
    const id = `nbscale-param-${p.name}`;
    const values = state.parameterValues;
    const input = this._input(p, kind, id, p.name in values ? values[p.name] : p.default);
    input.dataset.kind = kind;
    const mark = h('div', { className: 'nbscale-field-changed', id: `${id}-changed` });
    const error = h('div', { className: 'nbscale-field-error', id: `${id}-error`, role: 'alert' });
    const reset = button('↺', {
      kind: 'minimal',
      className: 'nbscale-param-reset',
      label: `Reset ${p.name} to the notebook's value ${defaultText(p)}`,
      title: `Back to the notebook's value ${defaultText(p)}`,
      onClick: () => {
        state.resetParameters(p.name);
        // the form was drawn again: keep the keyboard on this field, not lost on the page
        document.getElementById(id)?.focus();
      }
    });
    const node = h(
      'div',
      { className: 'nbscale-field', 'data-param': p.name },
      h(
        'label',
        { for: id, title: `${p.name}: ${p.type}, default ${defaultText(p)}` },
        h('span', { className: 'nbscale-param-name' }, p.name),
        h('span', { className: 'nbscale-type' }, p.type)
      ),
      h('div', { className: 'nbscale-field-control' }, input, reset),
      mark,
      error
    );
    const showChanged = () => {
      const changed = isChanged(p, state.parameterValues);
      node.classList.toggle('nbscale-changed', changed);
      node.dataset.changed = changed ? 'true' : 'false';
      mark.textContent = changed ? changedText(p) : '';
      reset.hidden = !changed;
      this._renderCount();
    };
    const onChange = () => {
      try {
        state.setParameter(p.name, coerceParameter(kind, kind === 'bool' ? input.checked : input.value, p.name));
        this._invalid.delete(p.name);
        input.removeAttribute('aria-invalid');
        error.textContent = '';
      } catch (err) {
        this._invalid.add(p.name);
        input.setAttribute('aria-invalid', 'true');
        error.textContent = (err as Error).message;
      }
      showChanged();
    };
    input.addEventListener(kind === 'bool' ? 'change' : 'input', onChange);
    showChanged();
    return { node, input };
  }
}
