/**
 * The base of the panel's four sections: a header that folds the section, a body that the
 * section renders from the PanelState, and a one-line notice for errors and confirmations.
 * The header and body follow the WAI-ARIA accordion pattern JupyterLab's side panels use (a
 * heading holding a button with aria-expanded/aria-controls, the body a region it labels);
 * sections stack in one scrolling column instead of an AccordionPanel's split heights, so a
 * long run or a big DAG never gets squeezed into a quarter of a narrow sidebar.
 */
import { Widget } from '@lumino/widgets';

import { h, replace } from './dom';
import { Part, PanelState } from './state';

export abstract class Section extends Widget {
  readonly body: HTMLElement;
  private readonly _notice: HTMLElement;
  private readonly _toggle: HTMLButtonElement;
  private readonly _extra: HTMLElement;

  constructor(
    readonly state: PanelState,
    readonly label: string,
    readonly parts: Part[]
  ) {
    super();
    const key = label.toLowerCase();
    this.id = `nbscale-section-${key}`;
    this.addClass('nbscale-section');
    this.addClass(`nbscale-section-${key}`);
    this.title.label = label;
    this._toggle = h(
      'button',
      {
        className: 'nbscale-section-toggle',
        id: `${this.id}-toggle`,
        'aria-expanded': 'true',
        'aria-controls': `${this.id}-body`,
        title: `Fold or unfold ${label}`
      },
      h('span', { className: 'nbscale-caret', 'aria-hidden': 'true' }),
      h('span', { className: 'nbscale-section-title' }, label)
    );
    this._toggle.addEventListener('click', () => this.setCollapsed(!this.collapsed));
    this._extra = h('span', { className: 'nbscale-section-extra' });
    this.body = h('div', {
      className: 'nbscale-section-body',
      id: `${this.id}-body`,
      role: 'region',
      'aria-labelledby': `${this.id}-toggle`
    });
    this._notice = h('div', { className: 'nbscale-notice', role: 'status', 'aria-live': 'polite' });
    const heading = h('h3', { className: 'nbscale-section-heading' }, this._toggle);
    this.node.appendChild(h('div', { className: 'nbscale-section-header' }, heading, this._extra));
    this.node.appendChild(this._notice);
    this.node.appendChild(this.body);
    state.changed.connect(this._onChanged, this);
  }

  get collapsed(): boolean {
    return this.hasClass('nbscale-collapsed');
  }

  setCollapsed(collapsed: boolean): void {
    this.toggleClass('nbscale-collapsed', collapsed);
    this._toggle.setAttribute('aria-expanded', collapsed ? 'false' : 'true');
  }

  /** A short text at the right of the header (a count, a status). */
  setExtra(text: string, className = ''): void {
    this._extra.className = `nbscale-section-extra ${className}`.trim();
    this._extra.textContent = text;
    // it ellipsizes in a narrow sidebar: the title keeps it whole
    this._extra.title = text;
  }

  /** Show one line under the header; an empty text clears it. */
  notice(text: string, kind: 'error' | 'info' | 'success' = 'info', ...extra: Node[]): void {
    replace(this._notice);
    this._notice.className = `nbscale-notice nbscale-notice-${kind}`;
    if (text) {
      this._notice.appendChild(h('span', {}, text));
      for (const node of extra) {
        this._notice.appendChild(node);
      }
    }
  }

  /** Run a user action: errors show in the notice, never as an unhandled rejection. */
  protected async act(what: string, action: () => Promise<unknown>): Promise<void> {
    try {
      this.notice('');
      await action();
    } catch (err) {
      this.notice(`${what}: ${err instanceof Error ? err.message : String(err)}`, 'error');
    }
  }

  private _onChanged(_: PanelState, part: Part): void {
    if (part === 'path' || this.parts.includes(part)) {
      this.refresh(part);
    }
  }

  /** Re-render now (tests call this; the state's signals call it with the changed part). */
  refresh(part: Part = 'path'): void {
    if (part === 'path') {
      this.notice('');
    }
    this.render(part);
  }

  protected abstract render(part: Part): void;

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.state.changed.disconnect(this._onChanged, this);
    super.dispose();
  }
}
