// The app's static files: plain ES modules and CSS in ui/assets/ (no build step, no CDN), served
// by name from this fixed list only.
import { fileURLToPath } from 'node:url';

/** ui/assets/ of the source tree (the server runs from dist/ui/). */
const DIR = new URL('../../ui/assets/', import.meta.url);

export const ASSETS: readonly string[] = ['index.html', 'app.js', 'dom.js', 'pages.js', 'dag.js', 'live.js', 'style.css'];

export function assetFile(name: string): string | undefined {
  return ASSETS.includes(name) ? fileURLToPath(new URL(name, DIR)) : undefined;
}
