/**
 * nbscale's JupyterLab plugin: the right-sidebar panel following the active notebook, step
 * badges on tagged cells, the commands, and the settings.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { NbscaleApi } from './api';
import { decorateCells, statusesFor, stepOrderFor } from './badges';
import { addCommands, PALETTE_CATEGORY } from './commands';
import { openDashboardPane } from './dashboardPane';
import { nbscaleIcon } from './icons';
import { NbscalePanel, PANEL_ID } from './panel';
import { openComparison } from './compareMainArea';
import { RunListSection } from './runList';
import { readSettings } from './settings';
import { addSuggestCommand } from './suggestCommand';
import { PanelState } from './state';

export const PLUGIN_ID = 'nbscale:plugin';

/** Select a cell of a notebook and bring it into view. */
function selectCell(app: JupyterFrontEnd, panel: NotebookPanel, index: number): void {
  const notebook = panel.content;
  if (index < 0 || index >= notebook.widgets.length) {
    return;
  }
  app.shell.activateById(panel.id);
  notebook.deselectAll();
  notebook.activeCellIndex = index;
  notebook.mode = 'command';
  const cell = notebook.widgets[index];
  void notebook.scrollToCell(cell, 'center');
  cell.node.classList.add('nbscale-flash');
  setTimeout(() => cell.node.classList.remove('nbscale-flash'), 1200);
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'nbscale side panel: pipeline DAG, live runs on Dask, cluster scaling and model metrics.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ISettingRegistry, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    restorer: ILayoutRestorer | null
  ) => {
    const api = new NbscaleApi();
    const state = new PanelState({ api, eventsUrl: path => api.eventsUrl(path) });
    const panel = new NbscalePanel(state);
    panel.title.icon = nbscaleIcon;
    app.shell.add(panel, 'right', { rank: 650 });
    if (restorer) {
      restorer.add(panel, PANEL_ID);
    }
    addCommands(app, panel, tracker, palette);
    addSuggestCommand(app, tracker, palette, PALETTE_CATEGORY);
    // The run list (after the Run section); Compare opens the comparison in the main area.
    const runList = new RunListSection(state, runIds => {
      if (state.path) {
        openComparison(app, api, state.path, runIds);
      }
    });
    panel.insertWidget(panel.widgets.indexOf(panel.run) + 1, runList);
    // The Cluster section's dashboard plot buttons open main-area panes.
    panel.cluster.plotRequested.connect((_, request) => openDashboardPane(app, request));

    // Follow the active notebook.
    const follow = (nb: NotebookPanel | null) => {
      if (!nb) {
        void state.setPath(null);
        return;
      }
      void nb.context.ready.then(() => {
        if (tracker.currentWidget === nb) {
          void state.setPath(nb.context.path);
        }
      });
    };
    tracker.currentChanged.connect((_, nb) => follow(nb));
    follow(tracker.currentWidget);

    // Badges on every open notebook; the pipeline compiles again on save.
    const redraws = new Map<NotebookPanel, () => void>();
    const watch = (nb: NotebookPanel) => {
      let pending = false;
      const redraw = () => {
        if (pending || nb.isDisposed) {
          return;
        }
        pending = true;
        setTimeout(() => {
          pending = false;
          if (!nb.isDisposed) {
            decorateCells(
              nb.content.widgets,
              statusesFor(state, nb.context.path),
              state.settings.showBadges,
              stepOrderFor(state, nb.context.path)
            );
          }
        }, 0);
      };
      redraws.set(nb, redraw);
      const connectCells = () => {
        const cells = nb.content.model?.cells;
        if (!cells) {
          return;
        }
        for (let i = 0; i < cells.length; i++) {
          const model = cells.get(i);
          model.metadataChanged.disconnect(redraw);
          model.metadataChanged.connect(redraw);
        }
        redraw();
      };
      void nb.context.ready.then(() => {
        nb.content.model?.cells.changed.connect(connectCells);
        connectCells();
      });
      nb.context.saveState.connect((_: DocumentRegistry.Context, saveState: string) => {
        if (saveState === 'completed' && state.settings.refreshOnSave && nb.context.path === state.path) {
          void state.refreshPipeline();
        }
      });
      nb.context.pathChanged.connect(() => {
        if (tracker.currentWidget === nb) {
          void state.setPath(nb.context.path);
        }
      });
      nb.disposed.connect(() => redraws.delete(nb));
    };
    tracker.widgetAdded.connect((_, nb) => watch(nb));
    tracker.forEach(watch);
    state.changed.connect((_, part) => {
      if (part === 'run' || part === 'pipeline' || part === 'settings' || part === 'path') {
        redraws.forEach(redraw => redraw());
      }
    });

    // The sidebar's "Open pipeline view" (and a step row's detail) open the main-area view.
    state.pipelineViewRequested.connect((_, step) => {
      void app.commands.execute('nbscale:open-pipeline-view', step ? { step } : {});
    });

    // A click on a step, a diagnostic or a traceback selects the cell.
    state.cellRequested.connect((_, index) => {
      const nb = tracker.find(w => w.context.path === state.path) ?? tracker.currentWidget;
      if (nb) {
        selectCell(app, nb, index);
      }
    });

    if (settingRegistry) {
      void settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          state.updateSettings(readSettings(settings));
          settings.changed.connect(() => state.updateSettings(readSettings(settings)));
        })
        .catch(reason => console.warn('nbscale: could not load settings', reason));
    }
  }
};

export default plugin;
