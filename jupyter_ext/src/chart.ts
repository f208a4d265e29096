/**
 * A small SVG line chart of one metric across runs (oldest left), each point labelled by its run,
 * the best run marked. Scales with the sidebar through its viewBox; colours come from
 * JupyterLab's CSS variables.
 */
import { s } from './dom';
import { formatNumber, formatTime } from './format';
import { ISeriesPoint, runLabel } from './metrics';

export interface IChartOptions {
  width?: number;
  height?: number;
  best?: string | null;
  title?: string;
  /** A point's label under the axis (default: the start of its run id). */
  label?: (point: ISeriesPoint) => string;
  /** At most this many labels under the axis; the others are skipped evenly (always the newest). */
  maxLabels?: number;
}

export interface IScale {
  min: number;
  max: number;
}

/** The value range shown: a little headroom, and a non-empty range for a flat series. */
export function valueScale(values: number[]): IScale {
  if (!values.length) {
    return { min: 0, max: 1 };
  }
  let min = Math.min(...values);
  let max = Math.max(...values);
  if (min === max) {
    const pad = Math.abs(min) * 0.05 || 0.5;
    return { min: min - pad, max: max + pad };
  }
  const pad = (max - min) * 0.08;
  min -= pad;
  max += pad;
  return { min, max };
}

export function renderLineChart(points: ISeriesPoint[], options: IChartOptions = {}): SVGSVGElement {
  const width = options.width ?? 280;
  const height = options.height ?? 120;
  const left = 44;
  const right = 10;
  const top = 10;
  const bottom = 18;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const scale = valueScale(points.map(p => p.value));
  const x = (i: number) => left + (points.length <= 1 ? plotW / 2 : (i / (points.length - 1)) * plotW);
  const y = (v: number) => top + plotH - ((v - scale.min) / (scale.max - scale.min)) * plotH;

  const svg = s('svg', {
    className: 'nbscale-chart',
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: 'img',
    'aria-label': options.title ?? 'metric across runs',
    'data-points': points.length
  });
  svg.style.maxWidth = '100%';
  svg.style.height = 'auto';

  // axes and the min/max ticks
  svg.appendChild(s('line', { className: 'nbscale-chart-axis', x1: left, y1: top, x2: left, y2: top + plotH }));
  svg.appendChild(
    s('line', { className: 'nbscale-chart-axis', x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH })
  );
  const values = points.map(p => p.value);
  if (values.length) {
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    for (const v of hi === lo ? [hi] : [lo, hi]) {
      svg.appendChild(
        s('line', { className: 'nbscale-chart-grid', x1: left, y1: y(v), x2: left + plotW, y2: y(v) })
      );
      svg.appendChild(
        s('text', { className: 'nbscale-chart-tick', x: left - 4, y: y(v), 'text-anchor': 'end', 'dominant-baseline': 'central' }, formatNumber(v))
      );
    }
  }
  if (!points.length) {
    svg.appendChild(s('text', { className: 'nbscale-chart-tick', x: left, y: height - 4, 'text-anchor': 'start' }, 'no runs yet'));
  }
  runLabels(svg, points, x, height - 4, options);

  if (points.length > 1) {
    const d = points.map((p, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
    svg.appendChild(s('path', { className: 'nbscale-chart-line', d }));
  }
  points.forEach((p, i) => {
    const best = options.best === p.run_id;
    const dot = s(
      'circle',
      {
        className: `nbscale-chart-point${best ? ' nbscale-chart-best' : ''}`,
        cx: x(i).toFixed(1),
        cy: y(p.value).toFixed(1),
        r: best ? 5 : 3,
        'data-run': p.run_id
      },
      s('title', {}, `run ${runLabel(p.run_id)} · ${formatTime(p.created)}  ${formatNumber(p.value)}${best ? '  (best)' : ''}`)
    );
    svg.appendChild(dot);
    if (best) {
      svg.appendChild(
        s(
          'text',
          {
            className: 'nbscale-chart-best-label',
            x: x(i),
            y: Math.max(top + 2, y(p.value) - 9),
            // keep the label inside the plot at either end
            'text-anchor': points.length > 1 && i === 0 ? 'start' : points.length > 1 && i === points.length - 1 ? 'end' : 'middle'
          },
          '★ best'
        )
      );
    }
  });
  return svg;
}

/** Each point's run under the axis, oldest left; with many runs every k-th and the newest. */
function runLabels(
  svg: SVGSVGElement,
  points: ISeriesPoint[],
  x: (i: number) => number,
  y: number,
  options: IChartOptions
): void {
  const label = options.label ?? ((p: ISeriesPoint) => runLabel(p.run_id));
  const every = Math.max(1, Math.ceil(points.length / (options.maxLabels ?? 5)));
  points.forEach((p, i) => {
    const last = i === points.length - 1;
    if (i % every !== 0 && !last) {
      return;
    }
    if (!last && points.length - 1 - i < every) {
      return; // too close to the newest, which is always labelled
    }
    const anchor = points.length > 1 && i === 0 ? 'start' : points.length > 1 && last ? 'end' : 'middle';
    svg.appendChild(
      s('text', { className: 'nbscale-chart-tick nbscale-chart-run', x: x(i), y, 'text-anchor': anchor, 'data-label-of': p.run_id }, label(p))
    );
  });
}
