/**
 * The lineage of a metric or a stored value (GET /nbscale/api/runs/RUN/lineage?name=NAME, the
 * model `nbscale lineage` prints): the step that made it and every step upstream of it as a tree,
 * each with its cache key, parameters, inputs, files read (path + digest), local modules and
 * package versions. Opened from the Metrics section. Everything is text (dom.ts `h()`).
 */
import { NbscaleApi } from './api';
import { h, replace } from './dom';
import { formatNumber, statusLabel } from './format';

/** One step of the lineage (kernels/lineage.py `run_nodes`). */
export interface ILineageNode {
  step: string;
  status: string;
  cached: boolean;
  cached_from: string | null;
  source: 'recorded' | 'run' | 'manifest' | 'none';
  hash: string | null;
  key: string | null;
  parameters: Record<string, unknown>;
  inputs: Record<string, { step: string; digest: string | null }>;
  outputs: Record<string, string | null>;
  files_read: Record<string, string | null>;
  files_written: Record<string, string | null>;
  modules: Record<string, string | null>;
  packages: Record<string, string>;
  imported: string[];
  truncated: Record<string, unknown>;
}

/** The lineage model (kernels/lineage.py `lineage`, paths as jupyter_ext/lineage.py shows them). */
export interface ILineageModel {
  run: { id: string; notebook: string; engine: string; status: string };
  name: string;
  kind: 'metric' | 'output' | 'kept';
  step: string;
  value?: unknown;
  /** A metric JSON cannot carry (NaN, infinity) as text; `value` is then null. */
  value_text?: string;
  digest?: string | null;
  nodes: ILineageNode[];
  edges: { from: string; to: string; names: string[] }[];
}

/** Where lineage models come from (LineageApi over HTTP; fakes in tests). */
export interface ILineageSource {
  lineage(path: string, runId: string, name: string): Promise<ILineageModel>;
}

export class LineageApi implements ILineageSource {
  constructor(readonly api: NbscaleApi = new NbscaleApi()) {}

  lineage(path: string, runId: string, name: string): Promise<ILineageModel> {
    return this.api.request<ILineageModel>(`runs/${encodeURIComponent(runId)}/lineage`, {}, { path, name });
  }
}

const SHORT = 20;

/** A digest or key cut for the tree (the title attribute holds it whole). */
export function shortDigest(digest: string | null | undefined): string {
  if (!digest) {
    return 'no digest';
  }
  return digest.length <= SHORT ? digest : `${digest.slice(0, SHORT)}…`;
}

function nodeStatus(node: ILineageNode): string {
  if (node.cached_from) {
    return `${statusLabel(node.status)}, cached from run ${node.cached_from.slice(0, 8)}`;
  }
  if (node.source === 'manifest') {
    return `${statusLabel(node.status)}, from the stored result`;
  }
  if (node.source === 'none') {
    return `${statusLabel(node.status)}, no lineage recorded`;
  }
  return statusLabel(node.status);
}

function detail(kind: string, label: string, value: string, title = ''): HTMLElement {
  return h('li', { className: 'nbscale-lineage-detail', 'data-kind': kind, title }, h('span', { className: 'nbscale-muted' }, `${label} `), value);
}

function details(node: ILineageNode): HTMLElement[] {
  const items: HTMLElement[] = [];
  for (const [name, value] of Object.entries(node.parameters ?? {})) {
    items.push(detail('parameter', 'parameter', `${name} = ${JSON.stringify(value)}`));
  }
  for (const [name, given] of Object.entries(node.inputs ?? {})) {
    items.push(detail('input', 'input', `${name} ← ${given.step} (${shortDigest(given.digest)})`, given.digest ?? ''));
  }
  const files: [string, string, Record<string, string | null>][] = [
    ['file', 'file read', node.files_read],
    ['written', 'file written', node.files_written],
    ['module', 'module', node.modules]
  ];
  for (const [kind, label, entries] of files) {
    for (const [path, digest] of Object.entries(entries ?? {})) {
      items.push(detail(kind, label, `${path} (${shortDigest(digest)})`, digest ?? ''));
    }
  }
  const packages = node.packages ?? {};
  const named = Object.keys(packages).filter(n => n === 'python' || (node.imported ?? []).includes(n));
  if (named.length) {
    const others = Object.keys(packages).length - named.length;
    const text = named.map(n => `${n} ${packages[n]}`).join(', ') + (others ? ` (+${others} more loaded)` : '');
    items.push(detail('packages', 'packages', text, Object.entries(packages).map(([n, v]) => `${n} ${v}`).join('\n')));
  }
  for (const [field, count] of Object.entries(node.truncated ?? {})) {
    items.push(detail('truncated', field, `${Array.isArray(count) ? count.length : String(count)} more not recorded`));
  }
  return items;
}

// nested lists indent little: the panel is a narrow sidebar
const TREE_STYLE = 'padding-left: 1em; margin: 0.2em 0; list-style: none';

function renderNode(nodes: Map<string, ILineageNode>, step: string, shown: Set<string>, open: boolean): HTMLElement {
  const node = nodes.get(step)!;
  const head = h(
    'summary',
    { className: 'nbscale-lineage-step' },
    h('span', { className: `nbscale-dot nbscale-status-${node.status}` }),
    ' ',
    h('span', { className: 'nbscale-mono' }, step),
    ' ',
    h('span', { className: 'nbscale-muted' }, nodeStatus(node))
  );
  if (shown.has(step)) {
    const again = h('div', { className: 'nbscale-lineage-step' }, ...Array.from(head.childNodes));
    again.appendChild(h('span', { className: 'nbscale-muted' }, ' (shown above)'));
    return h('li', { 'data-step': step }, again);
  }
  shown.add(step);
  head.appendChild(h('span', { className: 'nbscale-muted nbscale-mono', title: node.key ?? '' }, ` key ${shortDigest(node.key)}`));
  const box = h('details', { open }, head, h('ul', { className: 'nbscale-lineage-details', style: TREE_STYLE }, ...details(node)));
  const item = h('li', { 'data-step': step }, box);
  const upstream = [...new Set(Object.values(node.inputs ?? {}).map(i => i.step))].filter(s => nodes.has(s)).sort();
  if (upstream.length) {
    item.appendChild(h('ul', { className: 'nbscale-lineage-tree', style: TREE_STYLE }, ...upstream.map(s => renderNode(nodes, s, shown, false))));
  }
  return item;
}

/** The lineage model as a tree: the producing step at the root, upstream steps below it. */
export function renderLineage(model: ILineageModel): HTMLElement {
  const nodes = new Map(model.nodes.map(n => [n.step, n]));
  const what =
    model.kind === 'metric'
      ? `${model.name} = ${model.value_text ?? formatNumber(model.value)}`
      : `${model.name} (${shortDigest(model.digest)})`;
  return h(
    'div',
    { className: 'nbscale-lineage', 'data-name': model.name, 'data-run': model.run.id },
    h('div', { className: 'nbscale-subtitle' }, `Lineage of ${what}`),
    h('div', { className: 'nbscale-muted' }, `made by step ${model.step} · run ${model.run.id.slice(0, 8)} · ${model.run.notebook} · engine ${model.run.engine}`),
    nodes.has(model.step) ? h('ul', { className: 'nbscale-lineage-tree', style: TREE_STYLE }, renderNode(nodes, model.step, new Set(), true)) : null
  );
}

/** A place in a section that shows one lineage at a time, loaded on demand. */
export class LineagePane {
  readonly node: HTMLElement = h('div', { className: 'nbscale-lineage-pane' });
  private _request = 0;

  constructor(private readonly source: () => ILineageSource) {}

  /** Load and show the lineage of `name` of a run; a later call wins over an earlier one. */
  async show(path: string, runId: string, name: string): Promise<void> {
    const request = ++this._request;
    replace(this.node, h('p', { className: 'nbscale-muted' }, `Loading the lineage of ${name}…`));
    let content: HTMLElement;
    try {
      content = renderLineage(await this.source().lineage(path, runId, name));
    } catch (err) {
      content = h('p', { className: 'nbscale-error' }, `Lineage of ${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (request !== this._request) {
      return;
    }
    const close = h('button', { className: 'nbscale-button nbscale-lineage-close', title: 'Close the lineage', 'aria-label': 'Close the lineage' }, '×');
    close.addEventListener('click', () => this.clear());
    replace(this.node, close, content);
  }

  clear(): void {
    this._request++;
    replace(this.node);
  }
}
