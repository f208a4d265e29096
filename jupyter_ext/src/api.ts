/**
 * The HTTP client for `/nbscale/api/...` (docs/api.md). `ServerConnection.makeRequest` adds the
 * token or the XSRF header, so state-changing calls pass jupyter_server's checks.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  ApiError,
  ClusterAction,
  IApiClient,
  IClusterModel,
  IKfpSubmit,
  IMetricsHistory,
  IPipelineModel,
  IRunDetail,
  IRunSummary,
  IStartRun
} from './wire';

export const API_PREFIX = 'nbscale/api';

export class NbscaleApi implements IApiClient {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  url(endpoint: string, query: Record<string, string | number | undefined> = {}): string {
    const base = URLExt.join(this.settings.baseUrl, API_PREFIX, endpoint);
    const q = Object.entries(query)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
      .join('&');
    return q ? `${base}?${q}` : base;
  }

  /** The websocket URL of the event stream for a notebook. */
  eventsUrl(path: string): string {
    const base = URLExt.join(this.settings.wsUrl, API_PREFIX, 'events');
    let url = `${base}?path=${encodeURIComponent(path)}`;
    const token = this.settings.token;
    if (token && this.settings.appendToken) {
      url += `&token=${encodeURIComponent(token)}`;
    }
    return url;
  }

  /** A call of the server API: its JSON (or text) answer, or an ApiError with the server's message. */
  async request<T>(
    endpoint: string,
    init: RequestInit = {},
    query: Record<string, string | number | undefined> = {},
    as: 'json' | 'text' = 'json'
  ): Promise<T> {
    const response = await ServerConnection.makeRequest(this.url(endpoint, query), init, this.settings);
    const text = await response.text();
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`.trim();
      let detail: unknown = undefined;
      try {
        const body = JSON.parse(text);
        message = body.error ?? body.message ?? message;
        detail = body.detail;
      } catch {
        if (text && text.length < 300) {
          message = text;
        }
      }
      throw new ApiError(message, response.status, detail);
    }
    if (as === 'text') {
      return text as unknown as T;
    }
    return (text ? JSON.parse(text) : {}) as T;
  }

  private post<T>(endpoint: string, body: unknown): Promise<T> {
    return this.request<T>(endpoint, { method: 'POST', body: JSON.stringify(body) });
  }

  pipeline(path: string): Promise<IPipelineModel> {
    return this.request('pipeline', {}, { path });
  }

  async runs(path: string, limit = 50): Promise<IRunSummary[]> {
    const body = await this.request<{ runs: IRunSummary[] }>('runs', {}, { path, limit });
    return body.runs ?? [];
  }

  startRun(body: IStartRun): Promise<IRunSummary> {
    return this.post('runs', body);
  }

  run(path: string, runId: string): Promise<IRunDetail> {
    return this.request(`runs/${encodeURIComponent(runId)}`, {}, { path });
  }

  cancelRun(path: string, runId: string): Promise<IRunSummary> {
    return this.request(`runs/${encodeURIComponent(runId)}`, { method: 'DELETE' }, { path });
  }

  metrics(path: string): Promise<IMetricsHistory> {
    return this.request('metrics', {}, { path });
  }

  cluster(): Promise<IClusterModel> {
    return this.request('cluster');
  }

  clusterAction(action: ClusterAction): Promise<IClusterModel> {
    return this.post('cluster', action);
  }

  kfpYaml(path: string): Promise<string> {
    return this.request('kfp/yaml', {}, { path }, 'text');
  }

  kfpSubmit(body: IKfpSubmit): Promise<{ run_url: string }> {
    return this.post('kfp/submit', body);
  }
}
