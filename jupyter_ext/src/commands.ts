/**
 * Every command id of the extension, in one place, and the commands themselves.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, showErrorMessage } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';

import { downloadText } from './dom';
import { kfpYamlFileName } from './format';
import { nbscaleIcon } from './icons';
import { NbscalePanel } from './panel';
import { stepOfTags, validateStepName, withStepTag } from './tags';
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
    label: args => (args.engine ? `Run Pipeline (${args.engine})` : 'Run Notebook as Pipeline'),
    caption: 'Run the tagged notebook as a pipeline (on Dask unless the settings say otherwise)',
    isEnabled: () => hasNotebook() && !state.runActive,
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
    caption: "Set or change the active cell's step:NAME tag (empty removes it)",
    icon: args => (args.toolbar ? nbscaleIcon : undefined),
    isEnabled: () => !!tracker.activeCell,
    execute: async args => {
      const cell = tracker.activeCell;
      if (!cell) {
        return;
      }
      const tags = (cell.model.getMetadata('tags') as string[] | undefined) ?? [];
      let name = args.name as string | undefined;
      if (name === undefined) {
        const answer = await InputDialog.getText({
          title: 'Pipeline step of this cell',
          label: 'Step name (empty removes the step tag)',
          text: stepOfTags(tags) ?? '',
          placeholder: 'train'
        });
        if (!answer.button.accept || answer.value === null) {
          return;
        }
        name = answer.value;
      }
      const error = validateStepName(name);
      if (error) {
        fail('Invalid step name')(new Error(error));
        return;
      }
      const next = withStepTag(tags, name);
      if (next.length) {
        cell.model.setMetadata('tags', next);
      } else {
        cell.model.deleteMetadata('tags');
      }
    }
  });

  if (palette) {
    for (const command of Object.values(CommandIDs)) {
      palette.addItem({ command, category: PALETTE_CATEGORY });
    }
  }
}
