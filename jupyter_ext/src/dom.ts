/**
 * A tiny DOM builder. Text goes in through `textContent` only: nothing the server or a user's
 * notebook produced is ever parsed as HTML.
 */

export type Child = Node | string | number | null | undefined | false;

export interface IAttrs {
  [key: string]: string | number | boolean | null | undefined | EventListener;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(el: Element, attrs: IAttrs | undefined): void {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) {
      continue;
    }
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value as EventListener);
    } else if (key === 'className') {
      el.setAttribute('class', String(value));
    } else if (key === 'text') {
      el.textContent = String(value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
}

function append(el: Element, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    el.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element: h('div', {className: 'x'}, 'text', child). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: IAttrs,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element. */
export function s<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs?: IAttrs,
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag) as SVGElementTagNameMap[K];
  apply(el, attrs);
  append(el, children);
  return el;
}

/** Replace an element's children. */
export function replace(el: Element, ...children: Child[]): void {
  while (el.firstChild) {
    el.removeChild(el.firstChild);
  }
  append(el, children);
}

/**
 * A horizontal bar: `fraction` of 1 filled, with a text label on top. It is a labelled
 * progressbar: `name` is its accessible name ("Memory", "Run progress") and the label its
 * value text, so a screen reader says "Memory, 1.2 GiB / 4 GiB" rather than a bare number.
 */
export function bar(fraction: number, label: string, className = '', name = ''): HTMLElement {
  const f = Math.max(0, Math.min(1, isFinite(fraction) ? fraction : 0));
  const fill = h('div', { className: 'nbscale-bar-fill' });
  fill.style.width = `${(f * 100).toFixed(1)}%`;
  if (f > 0.9) {
    fill.classList.add('nbscale-bar-high');
  }
  return h(
    'div',
    {
      className: `nbscale-bar ${className}`.trim(),
      role: 'progressbar',
      'aria-label': name || null,
      'aria-valuemin': 0,
      'aria-valuemax': 100,
      'aria-valuenow': Math.round(f * 100),
      'aria-valuetext': label || null,
      title: name ? `${name}: ${label}` : label || null
    },
    fill,
    h('span', { className: 'nbscale-bar-label', 'aria-hidden': 'true' }, label)
  );
}

export interface IButtonOptions {
  /** The tooltip (and the accessible description). */
  title?: string;
  /** accept: the main action; warn: a destructive one; minimal: no background (icon-like). */
  kind?: 'accept' | 'warn' | 'minimal' | 'default';
  className?: string;
  /** An accessible name when the text alone does not say it (an icon, "↺"). */
  label?: string;
  onClick?: () => void;
}

const BUTTON_KINDS: Record<string, string> = {
  accept: 'jp-mod-accept nbscale-primary',
  warn: 'jp-mod-warn nbscale-danger',
  minimal: 'jp-mod-minimal',
  default: 'nbscale-secondary'
};

/**
 * A JupyterLab button: the markup @jupyterlab/ui-components' `Button` renders (`jp-Button`,
 * small, styled, accept/warn) so it follows the theme like JupyterLab's own, without pulling
 * React into the panel.
 */
export function button(text: string, options: IButtonOptions = {}): HTMLButtonElement {
  const kind = BUTTON_KINDS[options.kind ?? 'default'];
  const b = h(
    'button',
    {
      type: 'button',
      className: `jp-Button jp-mod-styled jp-mod-small nbscale-button ${kind} ${options.className ?? ''}`.trim(),
      title: options.title ?? null,
      'aria-label': options.label ?? null
    },
    text
  );
  if (options.onClick) {
    b.addEventListener('click', options.onClick);
  }
  return b;
}

/** Only http(s) links are shown as links: a `javascript:` URL from anywhere is text. */
export function safeHref(url: string | null | undefined): string | null {
  if (!url) {
    return null;
  }
  try {
    const u = new URL(url, window.location.href);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

export function downloadText(text: string, filename: string, type = 'application/x-yaml'): void {
  const blob = new Blob([text], { type });
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: filename });
  a.style.display = 'none';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
