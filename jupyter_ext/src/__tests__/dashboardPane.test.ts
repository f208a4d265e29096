import { DASHBOARD_PLOTS, DashboardPane, dashboardLinks, paneId, plotUrl } from '../dashboardPane';
import { cluster } from './fixtures';

const BASE = 'http://localhost/user/ann/';
const ORIGIN = 'http://localhost';

function withDashboard(link: string | null, proxy_path: string | null, note: string | null = null) {
  return { ...cluster(1), dashboard_link: link, dashboard: { link, proxy_path, note } };
}

describe('dashboardLinks', () => {
  it('goes through jupyter-server-proxy under the base URL', () => {
    const links = dashboardLinks(withDashboard('http://127.0.0.1:8787/status', 'proxy/8787/status'), BASE, ORIGIN);
    expect(links).toEqual({
      href: 'http://localhost/user/ann/proxy/8787/status',
      root: 'http://localhost/user/ann/proxy/8787/',
      proxied: true,
      note: null
    });
    expect(plotUrl(links.root!, DASHBOARD_PLOTS[0])).toBe('http://localhost/user/ann/proxy/8787/individual-task-stream');
  });

  it('takes only a port from the proxy path: anything else is no proxy', () => {
    for (const bad of ['proxy/8787/../../api/status', 'http://evil.example/proxy/1/status', 'proxy/99999/status', 'proxy/x/status']) {
      const links = dashboardLinks(withDashboard(null, bad), BASE, ORIGIN);
      expect(links.href).toBeNull();
      expect(links.root).toBeNull();
    }
  });

  it('uses a configured same-origin path as it is (the dask-labextension convention)', () => {
    const links = dashboardLinks(withDashboard('/user/ann/proxy/8787/status', null), BASE, ORIGIN);
    expect(links.href).toBe('http://localhost/user/ann/proxy/8787/status');
    expect(links.root).toBe('http://localhost/user/ann/proxy/8787/');
    expect(links.proxied).toBe(true);
  });

  it('links another origin directly, with the note, and gives no pane root', () => {
    const note = 'the dashboard is on sched.example, not on the Jupyter server\'s machine: the link goes there directly';
    const links = dashboardLinks(withDashboard('http://sched.example:8787/status', null, note), BASE, ORIGIN);
    expect(links).toEqual({ href: 'http://sched.example:8787/status', root: null, proxied: false, note });
    expect(dashboardLinks(withDashboard('javascript:alert(1)', null), BASE, ORIGIN).href).toBeNull();
    expect(dashboardLinks(withDashboard('//evil.example/status', null), BASE, ORIGIN).root).toBeNull();
  });

  it('reads an older model with only dashboard_link, and no cluster', () => {
    expect(dashboardLinks(cluster(1), BASE, ORIGIN).href).toBe('http://127.0.0.1:8787/status');
    expect(dashboardLinks(null, BASE, ORIGIN)).toEqual({ href: null, root: null, proxied: false, note: null });
  });
});

describe('DashboardPane', () => {
  it('is a closable tab with a sandboxed iframe of the plot', () => {
    const plot = DASHBOARD_PLOTS[2];
    const pane = new DashboardPane({ plot, url: 'http://localhost/proxy/8787/individual-workers-memory' });
    expect(pane.id).toBe(paneId(plot));
    expect(pane.title.label).toBe('Dask Worker memory');
    expect(pane.title.closable).toBe(true);
    expect(pane.iframe.getAttribute('src')).toBe('http://localhost/proxy/8787/individual-workers-memory');
    expect(pane.iframe.getAttribute('sandbox')).toBe('allow-scripts allow-same-origin');
    pane.load('http://localhost/proxy/9999/individual-workers-memory');
    expect(pane.iframe.getAttribute('src')).toBe('http://localhost/proxy/9999/individual-workers-memory');
    pane.dispose();
  });
});
