/**
 * The step detail over HTTP: GET /nbscale/api/runs/RUN/steps/STEP and the URL of its images
 * (…/files/NAME), next to the panel's other calls (api.ts) and authenticated the same way.
 */
import { NbscaleApi } from './api';
import { IStepDetailSource } from './stepDetail';
import { IStepDetail } from './wire';

export class StepDetailApi implements IStepDetailSource {
  constructor(readonly api: NbscaleApi) {}

  private endpoint(runId: string, step: string): string {
    return `runs/${encodeURIComponent(runId)}/steps/${encodeURIComponent(step)}`;
  }

  stepDetail(path: string, runId: string, step: string): Promise<IStepDetail> {
    return this.api.request<IStepDetail>(this.endpoint(runId, step), {}, { path });
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
