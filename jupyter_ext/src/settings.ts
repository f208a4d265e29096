/**
 * The panel's settings (schema/plugin.json describes them to JupyterLab's settings editor):
 * their defaults, and reading them from the setting registry.
 */
import type { ISettingRegistry } from '@jupyterlab/settingregistry';

import { Engine } from './wire';

export interface IPanelSettings {
  defaultEngine: Engine;
  useCache: boolean;
  pollInterval: number;
  kfpExperiment: string;
  metricDirections: Record<string, string>;
  refreshOnSave: boolean;
  showBadges: boolean;
}

export const DEFAULT_SETTINGS: IPanelSettings = {
  defaultEngine: 'dask',
  useCache: true,
  pollInterval: 1000,
  kfpExperiment: 'Default',
  metricDirections: {},
  refreshOnSave: true,
  showBadges: true
};

/** The settings the user set (composite values), for the keys the panel knows. */
export function readSettings(settings: Pick<ISettingRegistry.ISettings, 'get'>): Partial<IPanelSettings> {
  const out: Partial<IPanelSettings> = {};
  for (const key of Object.keys(DEFAULT_SETTINGS) as (keyof IPanelSettings)[]) {
    const value = settings.get(key).composite;
    if (value !== undefined && value !== null) {
      (out as any)[key] = value;
    }
  }
  return out;
}
