/**
 * The cell-tag grammar on the front end (its home is compiler/tags.py and compiler/layout.py;
 * this mirrors what the cell editor and the badges need): read a cell's tags into a
 * `ICellTagModel`, check it as the compiler would, change its role, and write it back as tags
 * that the compiler accepts, keeping the tags of other tools.
 */

/** The roles the cell editor offers; `null` in a model means "no role: part of the step above". */
export const ROLES = ['step', 'imports', 'functions', 'parameters', 'metrics', 'skip'] as const;
export type Role = (typeof ROLES)[number];

/** Roles whose cells are not steps: a step name or step option on them is `misplaced-tag`. */
const NOT_A_STEP: readonly Role[] = ['imports', 'functions', 'parameters', 'skip'];

/** Role tags and their aliases (Kale's and papermill's spellings). */
const ROLE_TAGS: Record<string, Role> = {
  imports: 'imports', functions: 'functions', parameters: 'parameters', metrics: 'metrics', skip: 'skip',
  'pipeline-parameters': 'parameters', 'injected-parameters': 'parameters', 'pipeline-metrics': 'metrics'
};

/** Key of key:value tags, with Kale's aliases. */
const VALUE_KEYS: Record<string, string> = {
  step: 'step', block: 'step', after: 'after', prev: 'after',
  resources: 'resources', image: 'image', retries: 'retries', cache: 'cache', timeout: 'timeout'
};

/** Tags of other tools that the compiler ignores (compiler/tags.py FOREIGN_TAGS). */
export const FOREIGN_TAGS = new Set([
  'hide-input', 'hide-output', 'hide-cell', 'remove-input', 'remove-output', 'remove-cell',
  'raises-exception', 'skip-execution', 'thebe-init', 'full-width', 'margin', 'output_scroll',
  'scroll-output', 'nbval-ignore-output', 'nbval-skip', 'nbval-raises-exception', 'nbval-check-output'
]);

const LIST_SEPARATOR = /[,;]/;
const NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const CPU = /^(\d+(\.\d+)?|\d+m)$/;
const MEMORY = /^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;
const WHOLE = /^\d+$/;
const DURATION = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;
const CACHE_VALUES: Record<string, 'on' | 'off'> = { on: 'on', true: 'on', off: 'off', false: 'off' };
export const RESOURCE_KEYS = ['cpu', 'memory', 'gpu'] as const;
export type ResourceKey = (typeof RESOURCE_KEYS)[number];

/** One cell's nbscale tags as the fields of the cell editor (values as typed, checked later). */
export interface ICellTagModel {
  role: Role | null;
  /** The step name ('' for none): the step a `step` cell starts, or a metrics cell's own name. */
  step: string;
  after: string[];
  resources: Record<ResourceKey, string>;
  image: string;
  retries: string;
  cache: '' | 'on' | 'off';
  timeout: string;
  /** Tags that are not nbscale's (other tools', unknown ones): written back unchanged. */
  other: string[];
  /** nbscale tags the model cannot hold (a second role, an unknown resource): dropped on write. */
  dropped: string[];
  /** How the cell spelled its role tag (`pipeline-parameters`), kept while the role stays. */
  roleTag?: string;
}

/** A problem with a model, for the editor field it concerns. */
export interface ITagProblem {
  field: 'role' | 'step' | 'after' | ResourceKey | 'image' | 'retries' | 'cache' | 'timeout';
  message: string;
}

export function emptyModel(): ICellTagModel {
  const resources = { cpu: '', memory: '', gpu: '' };
  return { role: null, step: '', after: [], resources, image: '', retries: '', cache: '', timeout: '', other: [], dropped: [] };
}

/** Read a cell's tags (any spelling the compiler accepts) into a model. */
export function parseTags(tags: readonly string[] | null | undefined): ICellTagModel {
  const model = emptyModel();
  for (const raw of tags ?? []) {
    const tag = String(raw).trim();
    if (!tag) {
      continue;
    }
    if (!readRole(model, tag) && !readValue(model, tag)) {
      model.other.push(tag);
    }
  }
  if (model.role === null && model.step) {
    model.role = 'step';
  }
  return model;
}

function readRole(model: ICellTagModel, tag: string): boolean {
  const role = ROLE_TAGS[tag];
  if (!role) {
    return false;
  }
  if (model.role && model.role !== role) {
    model.dropped.push(tag); // a cell has one role; the compiler keeps the first
  } else if (!model.role) {
    model.role = role;
    model.roleTag = tag;
  }
  return true;
}

function readValue(model: ICellTagModel, tag: string): boolean {
  if (tag.startsWith('limit:')) {
    return readKaleLimit(model, tag);
  }
  const colon = tag.indexOf(':');
  const key = colon > 0 ? VALUE_KEYS[tag.slice(0, colon)] : undefined;
  if (!key) {
    return false;
  }
  const value = tag.slice(colon + 1).trim();
  if (!value) {
    model.dropped.push(tag);
    return true;
  }
  const items = value.split(LIST_SEPARATOR).map(v => v.trim()).filter(v => v);
  switch (key) {
    case 'step':
      if (model.step && model.step !== value) {
        model.dropped.push(tag);
      } else {
        model.step = value;
      }
      break;
    case 'after':
      for (const name of items) {
        if (!model.after.includes(name)) {
          model.after.push(name);
        }
      }
      break;
    case 'resources':
      for (const item of items) {
        const [name, amount] = item.split('=', 2).map(s => s.trim());
        if (amount !== undefined && (RESOURCE_KEYS as readonly string[]).includes(name)) {
          model.resources[name as ResourceKey] = amount;
        } else {
          model.dropped.push(`resources:${item}`);
        }
      }
      break;
    case 'cache':
      model.cache = CACHE_VALUES[value.toLowerCase()] ?? (value as 'on');
      break;
    default:
      (model as any)[key] = value; // image, retries, timeout: checked by validateModel
  }
  return true;
}

function readKaleLimit(model: ICellTagModel, tag: string): boolean {
  const rest = tag.slice('limit:'.length);
  const cut = rest.lastIndexOf(':');
  let name = cut > 0 ? rest.slice(0, cut) : '';
  name = name.endsWith('/gpu') ? 'gpu' : name;
  if ((RESOURCE_KEYS as readonly string[]).includes(name)) {
    model.resources[name as ResourceKey] = rest.slice(cut + 1).trim();
  } else {
    model.dropped.push(tag);
  }
  return true;
}

/** Whether a role's cells take a step name and step options (after:, resources, ...). */
export function takesStepOptions(role: Role | null): boolean {
  return !(role && NOT_A_STEP.includes(role));
}

/** Whether a role's cells take a step name: required for `step`, optional for `metrics`. */
export function takesStepName(role: Role | null): boolean {
  return role === 'step' || role === 'metrics';
}

/**
 * The model with another role. What the new role cannot carry is cleared, so the tags written
 * from it are never `misplaced-tag`: imports/functions/parameters/skip lose the step name and
 * the step options; no role (part of the step above) loses the step name.
 */
export function withRole(model: ICellTagModel, role: Role | null): ICellTagModel {
  const next: ICellTagModel = { ...model, role, resources: { ...model.resources }, after: [...model.after] };
  if (role !== model.role) {
    delete next.roleTag;
  }
  if (!takesStepName(role)) {
    next.step = '';
  }
  if (!takesStepOptions(role)) {
    Object.assign(next, { after: [], resources: { cpu: '', memory: '', gpu: '' }, image: '', retries: '', cache: '', timeout: '' });
  }
  return next;
}

/** The tags for a model: nbscale's (one value per tag, no commas, as nbformat wants) then the others. */
export function tagsOf(model: ICellTagModel): string[] {
  const m = withRole(model, model.role); // never write what the role cannot carry
  const out: string[] = [];
  if (m.role && m.role !== 'step') {
    out.push(m.roleTag && ROLE_TAGS[m.roleTag] === m.role ? m.roleTag : m.role);
  }
  if (takesStepName(m.role) && m.step.trim()) {
    out.push(`step:${m.step.trim()}`);
  }
  for (const name of new Set(m.after.map(a => a.trim()).filter(a => a))) {
    out.push(`after:${name}`);
  }
  for (const key of RESOURCE_KEYS) {
    if (m.resources[key].trim()) {
      out.push(`resources:${key}=${m.resources[key].trim()}`);
    }
  }
  for (const key of ['image', 'retries', 'cache', 'timeout'] as const) {
    if (m[key].trim()) {
      out.push(`${key}:${m[key].trim()}`);
    }
  }
  return [...out, ...m.other];
}

/** Seconds of a timeout value, or null when the compiler would refuse it. */
export function parseDuration(value: string): number | null {
  const v = value.trim();
  let seconds: number;
  if (WHOLE.test(v)) {
    seconds = Number(v);
  } else {
    const match = DURATION.exec(v);
    if (!match || !(match[1] || match[2] || match[3])) {
      return null;
    }
    seconds = Number(match[1] ?? 0) * 3600 + Number(match[2] ?? 0) * 60 + Number(match[3] ?? 0);
  }
  return seconds > 0 ? seconds : null;
}

/** Why a step name is not valid, or null when it is ('' is valid: no name). */
export function validateStepName(name: string): string | null {
  const n = name.trim();
  if (n && !NAME.test(n)) {
    return 'A step name starts with a letter or _ and holds letters, digits, _ and - only.';
  }
  return null;
}

/** Whether a model holds an after: or a step option (resources, image, retries, cache, timeout). */
export function hasStepOptions(model: ICellTagModel): boolean {
  const values = [...model.after, ...Object.values(model.resources), model.image, model.retries, model.cache, model.timeout];
  return values.some(v => v.trim());
}

/** What the compiler would refuse in the tags written from this model (empty: none). */
export function validateModel(model: ICellTagModel): ITagProblem[] {
  const problems: ITagProblem[] = [];
  const add = (field: ITagProblem['field'], message: string) => problems.push({ field, message });
  const step = model.step.trim();
  if (model.role === 'step' && !step) {
    add('step', 'A step needs a name.');
  }
  if (takesStepName(model.role) && validateStepName(step)) {
    add('step', `'${step}': ${validateStepName(step)}`);
  }
  if (!takesStepOptions(model.role)) {
    return problems;
  }
  for (const name of model.after.map(a => a.trim())) {
    if (!NAME.test(name)) {
      add('after', `after: '${name}' is not a valid step name.`);
    } else if (name === step) {
      add('after', `A step cannot come after itself ('${name}').`);
    }
  }
  const { cpu, memory, gpu } = model.resources;
  if (cpu.trim() && !CPU.test(cpu.trim())) {
    add('cpu', `cpu '${cpu}': a number (2, 0.5) or millicores (500m).`);
  }
  if (memory.trim() && !MEMORY.test(memory.trim())) {
    add('memory', `memory '${memory}': a Kubernetes quantity such as 512Mi, 4Gi or 1G.`);
  }
  if (gpu.trim() && !WHOLE.test(gpu.trim())) {
    add('gpu', `gpu '${gpu}': a whole number.`);
  }
  if (model.retries.trim() && !WHOLE.test(model.retries.trim())) {
    add('retries', `retries '${model.retries}': a whole number ≥ 0.`);
  }
  if (model.cache && !CACHE_VALUES[model.cache]) {
    add('cache', `cache '${model.cache}': on or off.`);
  }
  if (model.timeout.trim() && parseDuration(model.timeout) === null) {
    add('timeout', `timeout '${model.timeout}': seconds > 0, or h/m/s parts such as 90s, 30m, 1h30m.`);
  }
  return problems;
}

/** Kale's pod label and annotation tags: ignored, with a `kale-pod-metadata` warning (compiler/tags.py). */
const KALE_POD_METADATA = /^(label|annotation):/;

/** Other tags nbscale reports as `unknown-tag` (not another tool's known tag). */
export function unknownTags(model: ICellTagModel): string[] {
  return model.other.filter(tag => !FOREIGN_TAGS.has(tag) && !KALE_POD_METADATA.test(tag));
}

/**
 * What the compiler says about a cell's tags as they are: two roles, bad values, step tags on a
 * cell that is no step (`misplaced-tag`), unknown tags. The badges mark a cell with any of them.
 */
export function tagProblems(tags: readonly string[] | null | undefined): string[] {
  const model = parseTags(tags);
  const problems = validateModel(model).map(p => p.message);
  if (!takesStepOptions(model.role) && (model.step || hasStepOptions(model))) {
    problems.unshift(`a '${model.role}' cell cannot carry step tags (step:, after:, resources, ...)`);
  }
  problems.push(...model.dropped.map(tag => `'${tag}' is not valid here`));
  problems.push(...unknownTags(model).map(tag => `unknown tag '${tag}'`));
  return problems;
}

/** A notebook cell as the step-name check needs it. */
export interface ILayoutCell {
  type: string;
  tags: readonly string[] | null | undefined;
  source: string;
}

function hasCode(source: string): boolean {
  return source.split('\n').some(line => line.trim() && !line.trim().startsWith('#'));
}

/**
 * The steps the compiler makes from the cells, in order, with each one's first cell (the walk of
 * compiler/layout.py): a step tag starts a step unless it names the step just above; a later
 * cell that starts a step of a name already used is `duplicate-step` (listed in `duplicates`).
 */
export function layoutSteps(cells: readonly ILayoutCell[], defaultName = '(notebook)'): {
  steps: { name: string; cell: number }[];
  duplicates: { name: string; cell: number; first: number }[];
} {
  const steps: { name: string; cell: number }[] = [];
  const duplicates: { name: string; cell: number; first: number }[] = [];
  const seen = new Map<string, number>();
  let current: string | null = null;
  let metricsSeen = false;
  const start = (name: string, cell: number) => {
    if (seen.has(name)) {
      duplicates.push({ name, cell, first: seen.get(name)! });
    } else {
      seen.set(name, cell);
      steps.push({ name, cell });
    }
    current = name;
  };
  cells.forEach((cell, index) => {
    if (cell.type !== 'code') {
      return;
    }
    const model = parseTags(cell.tags);
    if (!takesStepOptions(model.role)) {
      return;
    }
    if (model.role === 'metrics') {
      const name = model.step || freeName('metrics', seen);
      if (!metricsSeen && name !== current) {
        start(name, index); // a second metrics cell is duplicate-metrics and joins the step above
      }
      metricsSeen = true;
    } else if (model.step && model.step !== current) {
      start(model.step, index);
    } else if (current === null && hasCode(cell.source)) {
      start(defaultName, index);
    }
  });
  return { steps, duplicates };
}

/** The step the compiler names untagged leading cells after (compiler/layout.py default_step_name). */
export function defaultStepName(notebookPath: string): string {
  const stem = (notebookPath.split('/').pop() ?? '').replace(/\.ipynb$/, '');
  const name = stem.replace(/[^A-Za-z0-9_-]/g, '_') || 'main';
  return /^[A-Za-z_]/.test(name) ? name : `nb_${name}`;
}

/**
 * Why cell `index` with `tags` would make a `duplicate-step` or `after-missing-step` error in
 * this notebook (empty: it would not). Cell numbers in the message are 1-based, as JupyterLab shows them.
 */
export function stepConflicts(
  cells: readonly ILayoutCell[],
  index: number,
  tags: readonly string[],
  defaultName?: string
): string[] {
  const next = cells.map((cell, i) => (i === index ? { ...cell, tags } : cell));
  const { steps, duplicates } = layoutSteps(next, defaultName);
  const problems: string[] = [];
  const own = stepOfTags(tags);
  for (const d of duplicates) {
    if (d.cell === index || (own && d.name === own)) {
      problems.push(
        `Step '${d.name}' already starts at cell ${d.first + 1}: a cell continues a step only right below its cells; pick another name.`
      );
    }
  }
  const names = new Set(steps.map(s => s.name));
  for (const target of parseTags(tags).after) {
    if (takesStepOptions(parseTags(tags).role) && !names.has(target)) {
      problems.push(`after: there is no step '${target}' in this notebook.`);
    }
  }
  return problems;
}

function freeName(name: string, seen: Map<string, number>): string {
  let candidate = name;
  for (let n = 2; seen.has(candidate); n++) {
    candidate = `${name}_${n}`;
  }
  return candidate;
}

/** The step a cell's tags start, or null. `block:` is Kale's spelling. */
export function stepOfTags(tags: readonly string[] | null | undefined): string | null {
  const model = parseTags(tags);
  return takesStepName(model.role) && model.step ? model.step : null;
}

/** The pipeline role of a cell that starts no step (imports, parameters, ...), or null. */
export function roleOfTags(tags: readonly string[] | null | undefined): string | null {
  const role = parseTags(tags).role;
  return role === 'step' ? null : role;
}

/**
 * The tags with the cell's step set to `name`; an empty name removes the step tag. A cell that
 * was imports/functions/parameters/skip becomes a step (those cells cannot carry a step tag);
 * a metrics cell stays one, with its own step name.
 */
export function withStepTag(tags: readonly string[] | null | undefined, name: string): string[] {
  const error = validateStepName(name);
  if (error) {
    throw new Error(error);
  }
  const model = parseTags(tags);
  const n = name.trim();
  if (model.role === 'metrics') {
    return tagsOf({ ...model, step: n });
  }
  return tagsOf({ ...withRole(model, n ? 'step' : null), step: n });
}
