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

/** A horizontal bar: `fraction` of 1 filled, with a text label on top. */
export function bar(fraction: number, label: string, className = ''): HTMLElement {
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
      'aria-valuemin': 0,
      'aria-valuemax': 100,
      'aria-valuenow': Math.round(f * 100)
    },
    fill,
    h('span', { className: 'nbscale-bar-label' }, label)
  );
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
