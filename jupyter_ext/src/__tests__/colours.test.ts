import { STEP_COLOURS, stepColour } from '../colours';

describe('colours', () => {
  it('gives a step the same colour every time, from the palette', () => {
    expect(stepColour('train')).toBe(stepColour('train'));
    expect(STEP_COLOURS).toContain(stepColour('evaluate'));
    const names = ['load', 'split', 'train_lr', 'train_rf', 'evaluate', 'metrics'];
    expect(new Set(names.map(n => stepColour(n))).size).toBeGreaterThan(2);
    // with the pipeline's order, up to ten steps get distinct colours
    expect(new Set(names.map(n => stepColour(n, names))).size).toBe(6);
    expect(stepColour('unknown', names)).toBe(stepColour('unknown'));
  });
});
