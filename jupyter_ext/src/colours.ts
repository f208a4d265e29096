/**
 * Step colours, shared by the cell badges, the DAG and the Run section's swatches: picked by
 * the step's place in the pipeline, or by its name, so a step keeps its colour across sessions.
 */

export const STEP_COLOURS = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#9467bd',
  '#ff7f0e',
  '#17becf',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22'
];

/**
 * A step's colour: by its place in the pipeline when the order is known (distinct colours for
 * up to ten steps), else by a hash of its name.
 */
export function stepColour(name: string, order?: readonly string[]): string {
  const i = order ? order.indexOf(name) : -1;
  if (i >= 0) {
    return STEP_COLOURS[i % STEP_COLOURS.length];
  }
  let h = 0;
  for (let i = 0; i < name.length; i++) {
    h = (Math.imul(h, 31) + name.charCodeAt(i)) | 0;
  }
  return STEP_COLOURS[Math.abs(h) % STEP_COLOURS.length];
}
