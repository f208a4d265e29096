// jsdom has no DragEvent; Lumino's dragdrop touches it when imported.
if (typeof globalThis.DragEvent === 'undefined') {
  class DragEvent extends MouseEvent {
    constructor(type, init = {}) {
      super(type, init);
      this.dataTransfer = init.dataTransfer ?? null;
    }
  }
  globalThis.DragEvent = DragEvent;
}
// jsdom lacks these too; the panel only uses them for downloads.
if (typeof URL.createObjectURL === 'undefined') {
  URL.createObjectURL = () => 'blob:nbscale-test';
  URL.revokeObjectURL = () => undefined;
}
// jest 29's jsdom environment does not expose structuredClone (dagre uses it); browsers do.
if (typeof globalThis.structuredClone === 'undefined') {
  const v8 = require('v8');
  globalThis.structuredClone = value => v8.deserialize(v8.serialize(value));
}
