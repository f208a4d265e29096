/**
 * The step detail over HTTP: GET /nbscale/api/runs/RUN/steps/STEP and the URL of its images
 * (…/files/NAME), next to the panel's other calls (api.ts) and authenticated the same way.
 */
import { ServerConnection } from '@jupyterlab/services';

import { NbscaleApi } from './api';
import { IStepDetailSource } from './stepDetail';
import { ApiError, IStepDetail } from './wire';

export class StepDetailApi implements IStepDetailSource {
  constructor(readonly api: NbscaleApi) {}

  private endpoint(runId: string, step: string): string {
    return `runs/${encodeURIComponent(runId)}/steps/${encodeURIComponent(step)}`;
  }

  async stepDetail(path: string, runId: string, step: string): Promise<IStepDetail> {
    const url = this.api.url(this.endpoint(runId, step), { path });
    const response = await ServerConnection.makeRequest(url, {}, this.api.settings);
    const text = await response.text();
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`.trim();
      try {
        message = JSON.parse(text).error ?? message;
      } catch {
        // not JSON: keep the status line
      }
      throw new ApiError(message, response.status);
    }
    return JSON.parse(text) as IStepDetail;
  }

  imageUrl(path: string, runId: string, step: string, file: string): string {
    const settings = this.api.settings;
    const query: Record<string, string> = { path };
    if (settings.token && settings.appendToken) {
      query.token = settings.token; // as the events websocket: where no cookie reaches the server
    }
    return this.api.url(`${this.endpoint(runId, step)}/files/${encodeURIComponent(file)}`, query);
  }
}
