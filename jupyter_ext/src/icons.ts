/** The panel's icon (a small DAG), themed through JupyterLab's jp-icon3 class. */
import { LabIcon } from '@jupyterlab/ui-components';

const SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="8" y="2" width="8" height="5" rx="1.2"/>
    <rect x="2" y="17" width="8" height="5" rx="1.2"/>
    <rect x="14" y="17" width="8" height="5" rx="1.2"/>
    <path d="M11.25 7h1.5v3.25H18a1.5 1.5 0 0 1 1.5 1.5V17H18v-5.25H6V17H4.5v-5.25a1.5 1.5 0 0 1 1.5-1.5h5.25z"/>
  </g>
</svg>`;

export const nbscaleIcon = new LabIcon({ name: 'nbscale:icon', svgstr: SVG });
