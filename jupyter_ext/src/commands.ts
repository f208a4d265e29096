/**
 * Every command id of the extension, in one place, and the commands themselves.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ICommandPalette, InputDialog, MainAreaWidget, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';
import { INotebookTracker } from '@jupyterlab/notebook';

import { downloadText } from './dom';
import { kfpYamlFileName } from './format';
import { NbscaleApi } from './api';
import { nbscaleIcon } from './icons';
import { NbscalePanel } from './panel';
import { PipelineView } from './pipelineView';
import { PanelState } from './state';
import { StepDetailApi } from './stepDetailApi';
import { cellEditorContext, editCellTags } from './cellEditor';
import { validateStepName, withStepTag } from './tags';
import { Engine } from './wire';

export namespace CommandIDs {
  export const openPanel = 'nbscale:open-panel';
  export const run = 'nbscale:run';
  export const cancelRun = 'nbscale:cancel-run';
  export const exportKfp = 'nbscale:export-kfp';
  export const submitKfp = 'nbscale:submit-kfp';
  export const scaleCluster = 'nbscale:scale-cluster';
  export const refresh = 'nbscale:refresh';
  export const setStepTag = 'nbscale:set-step-tag';
  export const openPipelineView = 'nbscale:open-pipeline-view';
}

export const PALETTE_CATEGORY = 'nbscale';

export function addCommands(
  app: JupyterFrontEnd,
  panel: NbscalePanel,
  tracker: INotebookTracker,
  palette: ICommandPalette | null
): void {
  const { commands, shell } = app;
  const state = panel.state;
  const hasNotebook = () => !!state.path;

  const fail = (title: string) => (err: unknown) => {
    void showErrorMessage(title, err instanceof Error ? err.message : String(err));
  };

  commands.addCommand(CommandIDs.openPanel, {
    label: 'Open nbscale Panel',
    caption: 'Show the pipeline, runs, cluster and metrics of the active notebook',
    icon: args => (args.toolbar ? nbscaleIcon : undefined),
    execute: () => {
      shell.activateById(panel.id);
    }
  });

  commands.addCommand(CommandIDs.run, {
    label: args => (args.toolbar ? 'Run as pipeline' : args.engine ? `Run Pipeline (${args.engine})` : 'Run Notebook as Pipeline'),
    // disabled while a run cannot start (compile errors, a run going on): the tooltip says why
    caption: () => state.runBlockedReason ?? 'Run the tagged notebook as a pipeline (on Dask unless the settings say otherwise)',
    icon: args => (args.toolbar ? nbscaleIcon : undefined),
    isEnabled: () => !state.runBlockedReason,
    execute: async args => {
      shell.activateById(panel.id);
      const engine = (args.engine as Engine | undefined) ?? state.settings.defaultEngine;
      await panel.run.run(engine);
    }
  });

  commands.addCommand(CommandIDs.cancelRun, {
    label: 'Cancel Pipeline Run',
    isEnabled: () => state.runActive,
    execute: () => state.cancelRun().catch(fail('Could not cancel the run'))
  });

  commands.addCommand(CommandIDs.exportKfp, {
    label: 'Export Pipeline to Kubeflow Pipelines (YAML)',
    isEnabled: hasNotebook,
    execute: async () => {
      try {
        const yaml = await state.exportKfp();
        downloadText(yaml, kfpYamlFileName(state.pipeline?.name));
      } catch (err) {
        fail('Could not export the pipeline')(err);
      }
    }
  });

  commands.addCommand(CommandIDs.submitKfp, {
    label: 'Submit Pipeline to Kubeflow Pipelines',
    isEnabled: hasNotebook,
    execute: async () => {
      shell.activateById(panel.id);
      await panel.run.submitKfp();
    }
  });

  commands.addCommand(CommandIDs.scaleCluster, {
    label: 'Scale Dask Cluster…',
    caption: 'Scale the Dask cluster that runs pipelines to N workers',
    execute: async args => {
      let n = args.n as number | undefined;
      if (n === undefined) {
        const current = state.cluster?.workers?.length ?? 1;
        const answer = await InputDialog.getNumber({ title: 'Scale the Dask cluster to N workers', value: current });
        if (!answer.button.accept || answer.value === null) {
          return;
        }
        n = answer.value;
      }
      if (!Number.isInteger(n) || n < 0) {
        fail('Could not scale the cluster')(new Error('N must be a whole number ≥ 0.'));
        return;
      }
      try {
        if (state.cluster?.status !== 'running') {
          await state.clusterAction({ action: 'start' });
        }
        await state.clusterAction({ action: 'scale', n });
      } catch (err) {
        fail('Could not scale the cluster')(err);
      }
    }
  });

  commands.addCommand(CommandIDs.refresh, {
    label: 'Refresh nbscale Panel',
    execute: () =>
      Promise.all([state.refreshPipeline(), state.refreshRun(), state.refreshMetrics(), state.refreshCluster()])
  });

  commands.addCommand(CommandIDs.setStepTag, {
    label: args => (args.toolbar ? '' : 'Set Pipeline Step…'),
    caption: "Edit the active cell's pipeline tags: role, step name, after:, resources, retries, cache, timeout",
    icon: args => (args.toolbar ? nbscaleIcon : undefined),
    isEnabled: () => !!tracker.activeCell,
    execute: async args => {
      const nb = tracker.currentWidget;
      const cell = tracker.activeCell;
      if (!nb || !cell) {
        return;
      }
      const tags = (cell.model.getMetadata('tags') as string[] | undefined) ?? [];
      let next: string[] | null;
      if (args.name !== undefined) {
        // a step name given by the caller: set it (a skip/imports/... cell becomes a step)
        const error = validateStepName(String(args.name));
        if (error) {
          fail('Invalid step name')(new Error(error));
          return;
        }
        next = withStepTag(tags, String(args.name));
      } else {
        try {
          const context = cellEditorContext(nb.content, cell.model, nb.context.path);
          next = await editCellTags(tags, context, { showDialog, Dialog });
        } catch (err) {
          fail('Could not set the tags')(err);
          return;
        }
      }
      if (next === null) {
        return;
      }
      if (next.length) {
        cell.model.setMetadata('tags', next);
      } else {
        cell.model.deleteMetadata('tags');
      }
    }
  });

  // Run and Cancel are enabled (and the Run tooltip says why not) as the panel's state changes.
  state.changed.connect(() => {
    commands.notifyCommandChanged(CommandIDs.run);
    commands.notifyCommandChanged(CommandIDs.cancelRun);
  });

  addPipelineViewCommand(app, state);

  if (palette) {
    for (const command of Object.values(CommandIDs)) {
      palette.addItem({ command, category: PALETTE_CATEGORY });
    }
  }
}

/** nbscale:open-pipeline-view {step?}: the main-area pipeline view of the panel's notebook (one, reused). */
function addPipelineViewCommand(app: JupyterFrontEnd, state: PanelState): void {
  let widget: MainAreaWidget<PipelineView> | null = null;
  app.commands.addCommand(CommandIDs.openPipelineView, {
    label: 'Open Pipeline View',
    caption: "The notebook's pipeline in the main area: zoom, edge names, live statuses, step details",
    isEnabled: () => !!state.path,
    execute: args => {
      if (!widget || widget.isDisposed) {
        const view = new PipelineView(state, new StepDetailApi(new NbscaleApi()));
        widget = new MainAreaWidget({ content: view });
        widget.id = 'nbscale-pipeline-view-area';
        widget.title.label = view.title.label;
        widget.title.closable = true;
        widget.title.icon = nbscaleIcon;
        view.title.changed.connect(() => {
          widget!.title.label = view.title.label;
          widget!.title.caption = view.title.caption;
        });
        widget.toolbar.addItem('nbscale-pipeline-controls', new Widget({ node: view.controls }));
      }
      if (!widget.isAttached) {
        app.shell.add(widget, 'main', { mode: 'split-bottom' }); // wide: a left-to-right pipeline fits
      }
      app.shell.activateById(widget.id);
      const step = typeof args.step === 'string' ? args.step : null;
      if (step) {
        widget.content.selectStep(step, false);
      }
    }
  });
}
