/**
 * The "nbscale: Suggest Steps…" command: asks the server for step tags proposed for the active
 * notebook (GET /nbscale/api/notebooks/suggest), shows them (suggest.ts) and on Apply writes them
 * into the open notebook's cell metadata through its model: one undoable change, saved by the user.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, ICommandPalette, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { NbscaleApi } from './api';
import { ISuggestCell, ISuggestion, showSuggestion } from './suggest';

export const SUGGEST_COMMAND = 'nbscale:suggest-steps';

/** The proposal for the notebook at `path`, or an ApiError with the server's message. */
export function fetchSuggestion(api: NbscaleApi, path: string): Promise<ISuggestion> {
  return api.request<ISuggestion>('notebooks/suggest', {}, { path });
}

/** The notebook's cells as suggest.ts applies tags to them. */
function modelCells(nb: NotebookPanel): ISuggestCell[] {
  const cells = nb.content.model?.cells;
  const found: ISuggestCell[] = [];
  for (let i = 0; cells && i < cells.length; i++) {
    const model = cells.get(i);
    found.push({
      type: model.type,
      source: model.sharedModel.getSource(),
      setTags: tags => (tags.length ? model.setMetadata('tags', tags) : model.deleteMetadata('tags'))
    });
  }
  return found;
}

export function addSuggestCommand(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  palette: ICommandPalette | null,
  category: string
): void {
  const api = new NbscaleApi();
  app.commands.addCommand(SUGGEST_COMMAND, {
    label: 'Suggest Steps…',
    caption: 'Propose step tags for the active notebook from its dataflow and cell times, and apply them',
    isEnabled: () => !!tracker.currentWidget,
    execute: async () => {
      const nb = tracker.currentWidget;
      if (!nb) {
        return;
      }
      try {
        await nb.context.ready;
        const proposal = await fetchSuggestion(api, nb.context.path);
        const transact = (change: () => void) =>
          nb.content.model ? nb.content.model.sharedModel.transact(change) : change();
        await showSuggestion(proposal, () => modelCells(nb), { showDialog, Dialog }, transact);
      } catch (err) {
        void showErrorMessage('Could not suggest steps', err instanceof Error ? err.message : String(err));
      }
    }
  });
  tracker.currentChanged.connect(() => app.commands.notifyCommandChanged(SUGGEST_COMMAND));
  if (palette) {
    palette.addItem({ command: SUGGEST_COMMAND, category });
  }
}
