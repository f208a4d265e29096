/**
 * The right-sidebar panel "nbscale": a header naming the followed notebook and how live
 * updates arrive, then the four sections, one scrolling column (fits a narrow sidebar).
 */
import { Panel, Widget } from '@lumino/widgets';

import { ClusterSection } from './clusterSection';
import { h } from './dom';
import { MetricsSection } from './metricsSection';
import { PipelineSection } from './pipelineSection';
import { RunSection } from './runSection';
import { PanelState, Part } from './state';

export const PANEL_ID = 'nbscale-panel';

const LIVE_LABELS: Record<string, [string, string]> = {
  websocket: ['live', 'Updates arrive over the event websocket'],
  polling: ['polling', 'The event websocket is down: polling the server'],
  connecting: ['connecting', 'Connecting to the event websocket'],
  stopped: ['', '']
};

export class NbscalePanel extends Panel {
  readonly pipeline: PipelineSection;
  readonly run: RunSection;
  readonly cluster: ClusterSection;
  readonly metrics: MetricsSection;
  private readonly _notebook: HTMLElement;
  private readonly _live: HTMLElement;

  constructor(readonly state: PanelState) {
    super();
    this.id = PANEL_ID;
    this.addClass('nbscale-panel');
    this.title.caption = 'nbscale: pipeline, runs, cluster, metrics';
    this._notebook = h('span', { className: 'nbscale-panel-notebook' });
    this._live = h('span', { className: 'nbscale-live' });
    const header = new Widget({
      node: h(
        'div',
        { className: 'nbscale-panel-header' },
        h('span', { className: 'nbscale-panel-title' }, 'nbscale'),
        this._notebook,
        this._live
      )
    });
    this.addWidget(header);
    this.pipeline = new PipelineSection(state);
    this.run = new RunSection(state);
    this.cluster = new ClusterSection(state);
    this.metrics = new MetricsSection(state);
    for (const section of [this.pipeline, this.run, this.cluster, this.metrics]) {
      this.addWidget(section);
    }
    state.changed.connect(this._onChanged, this);
    this._renderHeader();
  }

  private _onChanged(_: PanelState, part: Part): void {
    if (part === 'path' || part === 'live') {
      this._renderHeader();
    }
  }

  private _renderHeader(): void {
    const path = this.state.path;
    this._notebook.textContent = path ? path.split('/').pop() ?? path : 'no notebook';
    this._notebook.title = path ?? 'Open a notebook';
    const [label, title] = LIVE_LABELS[this.state.liveMode] ?? ['', ''];
    this._live.textContent = label;
    this._live.title = title;
    this._live.dataset.mode = this.state.liveMode;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.state.changed.disconnect(this._onChanged, this);
    super.dispose();
  }
}
