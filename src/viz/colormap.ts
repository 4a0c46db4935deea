/** Colour maps for heat maps drawn without plotly (attention overlays, in Node with sharp and in the browser lab). */

/** A perceptual colour map (viridis, 5 stops, linear between them): sharp and the canvas have none. */
export function viridis(t: number): [number, number, number] {
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.max(0, Math.min(1, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return [0, 1, 2].map((c) => Math.round(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]))) as [number, number, number];
}
