/**
 * Pipeline parameters in the Run form: which input a parameter gets, the text it shows, the
 * typed value typed text means (or one clear line saying why it is not one), the form values
 * of each notebook (ParameterForms), and which values a run is sent (only those that differ
 * from the notebook's).
 */
import { IParameter } from './wire';

export type ParameterKind = 'int' | 'float' | 'bool' | 'str' | 'json';

export function parameterKind(p: IParameter): ParameterKind {
  const t = (p.type || '').toLowerCase();
  if (t === 'int' || t === 'integer') {
    return 'int';
  }
  if (t === 'float' || t === 'number') {
    return 'float';
  }
  if (t === 'bool' || t === 'boolean') {
    return 'bool';
  }
  if (t === 'str' || t === 'string') {
    return 'str';
  }
  // lists, dicts, None: edited as JSON
  return 'json';
}

/** The text an input shows for a parameter value. */
export function parameterText(kind: ParameterKind, value: unknown): string {
  if (kind === 'json') {
    return JSON.stringify(value ?? null);
  }
  return value === null || value === undefined ? '' : String(value);
}

function coerceBool(text: string | boolean, name: string): boolean {
  if (typeof text === 'boolean') {
    return text;
  }
  const t = text.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(t)) {
    return true;
  }
  if (['false', '0', 'no', 'off', ''].includes(t)) {
    return false;
  }
  throw new Error(`${name}: expected true or false, got "${text}"`);
}

function coerceInt(s: string, name: string): number {
  const t = s.trim();
  if (!/^[-+]?\d+$/.test(t)) {
    throw new Error(`${name}: expected an integer, got "${s}"`);
  }
  return parseInt(t, 10);
}

function coerceFloat(s: string, name: string): number {
  const t = s.trim();
  const v = Number(t);
  if (t === '' || !isFinite(v)) {
    throw new Error(`${name}: expected a number, got "${s}"`);
  }
  return v;
}

function coerceJson(s: string, name: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    throw new Error(`${name}: expected a JSON value, got "${s}"`);
  }
}

/**
 * Turn an input's text back into a typed value. Throws an Error with one clear line when the
 * text is not a value of the parameter's type.
 */
export function coerceParameter(kind: ParameterKind, text: string | boolean, name = 'value'): unknown {
  if (kind === 'bool') {
    return coerceBool(text, name);
  }
  const s = String(text);
  switch (kind) {
    case 'str':
      return s;
    case 'int':
      return coerceInt(s, name);
    case 'float':
      return coerceFloat(s, name);
    default:
      return coerceJson(s, name);
  }
}

/** Two parameter values are the same when their JSON is (1.0 from Python is 1 here). */
export function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** Whether the form's value of a parameter differs from the notebook's default. */
export function isChanged(p: IParameter, values: Record<string, unknown>): boolean {
  return p.name in values && !sameValue(values[p.name], p.default);
}

/** Only the parameters whose value differs from the notebook's default are sent. */
export function changedParameters(
  parameters: IParameter[],
  values: Record<string, unknown>
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of parameters) {
    if (isChanged(p, values)) {
      out[p.name] = values[p.name];
    }
  }
  return out;
}

interface IForm {
  /** The parameters cell as last compiled: what a value is compared with and reset to. */
  parameters: IParameter[];
  values: Record<string, unknown>;
}

/**
 * The Run form's values, one set per notebook (keyed by path): a value typed for one notebook
 * never shows in, or is sent with, another's run. Kept for the session, so switching back to
 * a notebook finds its edits again.
 */
export class ParameterForms {
  private readonly _forms = new Map<string, IForm>();

  /** The form values of a notebook ({} before its pipeline is known). */
  values(path: string | null): Record<string, unknown> {
    return (path && this._forms.get(path)?.values) || {};
  }

  /**
   * Take a notebook's freshly compiled parameters cell. A new parameter gets its default; a
   * parameter whose default or type changed in the notebook is reset to the new default (the
   * notebook is the newer word); the user's other edits stay; removed parameters go.
   */
  sync(path: string, parameters: IParameter[]): void {
    const before = this._forms.get(path);
    const values: Record<string, unknown> = {};
    for (const p of parameters) {
      const old = before?.parameters.find(q => q.name === p.name);
      const kept = old && old.type === p.type && sameValue(old.default, p.default) && p.name in before!.values;
      values[p.name] = kept ? before!.values[p.name] : p.default;
    }
    this._forms.set(path, { parameters, values });
  }

  set(path: string, name: string, value: unknown): void {
    const form = this._forms.get(path);
    if (form) {
      form.values = { ...form.values, [name]: value };
    }
  }

  /** Back to the notebook's defaults: one parameter, or all of them. */
  reset(path: string, name?: string): void {
    const form = this._forms.get(path);
    if (!form) {
      return;
    }
    const values = { ...form.values };
    for (const p of form.parameters) {
      if (name === undefined || p.name === name) {
        values[p.name] = p.default;
      }
    }
    form.values = values;
  }

  /** Forget a notebook's form (closed, renamed). */
  forget(path: string): void {
    this._forms.delete(path);
  }
}
