/**
 * The Dask dashboard in JupyterLab: where its link points (through jupyter-server-proxy when the
 * server says it can, as dask-labextension does) and its individual plots (task stream, progress,
 * worker memory) as main-area panes, each an iframe of the dashboard's `/individual-…` page.
 *
 * A pane only ever shows a same-origin URL: `<base_url>proxy/<port>/<plot>`, built from a port
 * number and a plot route of the fixed list below, or the configured dashboard link when that is
 * a path on the Jupyter server. A direct link to another origin is a link, never an iframe.
 */
import type { JupyterFrontEnd } from '@jupyterlab/application';
import { Widget } from '@lumino/widgets';

import { h, safeHref } from './dom';
import { IClusterModel } from './wire';

/** The plots a pane can show: dask-labextension's routes, as distributed serves them. */
export const DASHBOARD_PLOTS = [
  { route: 'individual-task-stream', label: 'Task stream' },
  { route: 'individual-progress', label: 'Progress' },
  { route: 'individual-workers-memory', label: 'Worker memory' }
] as const;

export type DashboardPlot = (typeof DASHBOARD_PLOTS)[number];

/** Where the dashboard is, as the Cluster section shows it. */
export interface IDashboardLinks {
  /** The link to the whole dashboard (status page), or null. */
  href: string | null;
  /** Same-origin root the plots hang from (ends with '/'), or null: no panes. */
  root: string | null;
  /** Whether the link goes through the Jupyter server (jupyter-server-proxy or a configured path). */
  proxied: boolean;
  /** Why there is no link, or why it goes straight to the dashboard. */
  note: string | null;
}

const PROXY_PATH = /^proxy\/(\d{1,5})\/status$/;

/** The dashboard links of a cluster; `baseUrl` is the Jupyter server's (PageConfig.getBaseUrl()). */
export function dashboardLinks(cluster: IClusterModel | null, baseUrl: string, origin = window.location.origin): IDashboardLinks {
  const dashboard = cluster?.dashboard;
  const note = dashboard?.note ?? null;
  const port = PROXY_PATH.exec(dashboard?.proxy_path ?? '')?.[1];
  if (port && Number(port) > 0 && Number(port) < 65536) {
    const root = `${withSlash(baseUrl)}proxy/${Number(port)}/`;
    return { href: `${root}status`, root, proxied: true, note };
  }
  const link = dashboard ? dashboard.link : cluster?.dashboard_link ?? null;
  const href = safeHref(link);
  if (!href) {
    return { href: null, root: null, proxied: false, note };
  }
  const sameOrigin = !!link && link.startsWith('/') && !link.startsWith('//') && new URL(href).origin === origin;
  return { href, root: sameOrigin ? statusRoot(href) : null, proxied: sameOrigin, note };
}

/** The URL of one plot under a same-origin dashboard root. */
export function plotUrl(root: string, plot: DashboardPlot): string {
  return `${withSlash(root)}${plot.route}`;
}

function withSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}

/** A dashboard link without its trailing `status` page: the root the plots hang from. */
function statusRoot(href: string): string {
  const u = new URL(href);
  u.search = '';
  u.hash = '';
  u.pathname = u.pathname.replace(/status\/?$/, '');
  return withSlash(u.href);
}

/** What the Cluster section asks for when a plot button is clicked. */
export interface IPlotRequest {
  plot: DashboardPlot;
  url: string;
}

/** One dashboard plot in the main area: an iframe of its page. */
export class DashboardPane extends Widget {
  readonly iframe: HTMLIFrameElement;

  constructor(request: IPlotRequest) {
    super();
    this.id = paneId(request.plot);
    this.addClass('nbscale-dashboard-pane');
    this.title.label = `Dask ${request.plot.label}`;
    this.title.caption = `Dask dashboard: ${request.plot.label}`;
    this.title.closable = true;
    // Bokeh's page needs its scripts and its websocket to the same server (as in dask-labextension);
    // the URL is same-origin by construction (see dashboardLinks), so the page is the dashboard's.
    this.iframe = h('iframe', { title: this.title.caption, className: 'nbscale-dashboard-frame' });
    this.iframe.setAttribute('sandbox', 'allow-scripts allow-same-origin');
    this.node.appendChild(this.iframe);
    this.load(request.url);
  }

  /** Show the plot at `url` (a new cluster, or the same plot asked for again). */
  load(url: string): void {
    if (this.iframe.getAttribute('src') !== url) {
      this.iframe.setAttribute('src', url);
    }
  }
}

export function paneId(plot: DashboardPlot): string {
  return `nbscale-dask-${plot.route}`;
}

/** Open (or bring forward) the pane of a plot in JupyterLab's main area. */
export function openDashboardPane(app: JupyterFrontEnd, request: IPlotRequest): DashboardPane {
  const id = paneId(request.plot);
  let pane: DashboardPane | undefined;
  for (const widget of app.shell.widgets('main')) {
    if (widget.id === id && widget instanceof DashboardPane) {
      pane = widget;
    }
  }
  if (pane) {
    pane.load(request.url);
  } else {
    pane = new DashboardPane(request);
    app.shell.add(pane, 'main', { mode: 'split-right' });
  }
  app.shell.activateById(id);
  return pane;
}
