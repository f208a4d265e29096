/**
 * Opening a comparison of runs in the main area: fetch the model from GET /nbscale/api/compare and
 * show it in a CompareView inside a MainAreaWidget (one per set of runs; asking again brings it forward).
 */
import type { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';

import type { NbscaleApi } from './api';
import { CompareView } from './compareView';
import { runLabel } from './metrics';
import { ApiError, IComparison } from './wire';

/** GET /nbscale/api/compare for runs of the notebook at `path`. */
export async function fetchComparison(api: NbscaleApi, path: string, runIds: string[]): Promise<IComparison> {
  const url = api.url('compare', { path, runs: runIds.join(',') });
  const response = await ServerConnection.makeRequest(url, {}, api.settings);
  const text = await response.text();
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new ApiError(body?.error ?? `${response.status} ${response.statusText}`.trim(), response.status, body?.detail);
  }
  return body as IComparison;
}

/** Open (or bring forward) the comparison of `runIds` of the notebook at `path` in the main area. */
export function openComparison(app: JupyterFrontEnd, api: NbscaleApi, path: string, runIds: string[]): MainAreaWidget<CompareView> {
  const id = `nbscale-compare-${runIds.join('-')}`;
  const open = Array.from(app.shell.widgets('main')).find(w => w.id === id);
  if (open) {
    app.shell.activateById(id);
    return open as MainAreaWidget<CompareView>;
  }
  const view = new CompareView(runIds);
  const widget = new MainAreaWidget({ content: view });
  widget.id = id;
  widget.title.label = `Compare ${runIds.map(runLabel).join(' · ')}`;
  widget.title.caption = `nbscale: runs ${runIds.join(', ')} of ${path}`;
  widget.title.closable = true;
  app.shell.add(widget, 'main');
  app.shell.activateById(id);
  fetchComparison(api, path, runIds).then(
    model => view.setModel(model),
    err => view.setError(err instanceof Error ? err.message : String(err))
  );
  return widget;
}
