// Vega-Lite spec → SVG text without a browser: vega-lite compiles the spec to Vega, and a headless vega
// View (renderer "none": no DOM, no canvas) draws the scene graph as SVG markup.

import * as vega from "vega";
import { compile, type TopLevelSpec, version as vegaLiteVersion } from "vega-lite";

/** The library versions that drew the charts, for the report's footer. */
export const RENDERER_VERSIONS: { vega: string; vegaLite: string } = {
  vega: vega.version,
  vegaLite: vegaLiteVersion,
};

/** Options of {@link renderSvg}. */
export interface RenderOptions {
  /** Receives each warning of vega-lite and vega (default: printed to stderr). */
  onWarning?: (message: string) => void;
}

/**
 * Renders a Vega-Lite spec with inline data to a standalone SVG document string. Data must be inline:
 * the loader is given no base URL and refuses to read files or the network.
 *
 * @example
 * ```ts
 * import { renderSvg } from "./render.ts";
 * const svg = await renderSvg({
 *   data: { values: [{ x: 1, y: 2 }, { x: 2, y: 3 }] },
 *   mark: "line",
 *   encoding: { x: { field: "x", type: "quantitative" }, y: { field: "y", type: "quantitative" } },
 * });
 * svg.startsWith("<svg"); // true
 * ```
 */
export async function renderSvg(spec: TopLevelSpec, options: RenderOptions = {}): Promise<string> {
  const warn = options.onWarning ?? ((message: string) => console.error(`report: ${message}`));
  const logger = vega.logger(vega.Warn);
  logger.warn = (...args: readonly unknown[]) => {
    warn(args.map(String).join(" "));
    return logger;
  };
  const compiled = compile(spec, { logger }).spec;
  const loader = vega.loader({ mode: "http" });
  // Inline data only: a spec never reaches outside the report.
  loader.load = (uri: string) =>
    Promise.reject(new TypeError(`renderSvg: expected inline data, found a URL ${uri}`));
  const view = new vega.View(vega.parse(compiled), { renderer: "none", loader, logger });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * An SVG document made fit to inline into HTML: the namespace declarations (the HTML parser supplies
 * them) are dropped, so the page holds no URL at all, and a title gives the chart an accessible name.
 */
export function inlineSvg(svg: string, title: string): string {
  const open = /^<svg\b[^>]*>/.exec(svg);
  if (!open) throw new SyntaxError(`inlineSvg: expected an <svg> element first, found "${svg.slice(0, 40)}"`);
  const tag = open[0]
    .replace(/\s+xmlns(:\w+)?="[^"]*"/g, "")
    .replace(/^<svg/, `<svg role="img" aria-label="${escapeAttr(title)}"`);
  return tag + svg.slice(open[0].length);
}

function escapeAttr(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
}
