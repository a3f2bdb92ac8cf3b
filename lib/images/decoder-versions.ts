// Which decoder builds produced the pixels: recorded in decode.json and in decode's cache key
// (a new libjpeg-turbo release may change pixels, so it must rerun decode).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
/** A dependency's version from its package.json (found from its entry point: some packages do not export package.json). */
function packageVersion(name: string): string {
  try {
    let dir = dirname(require.resolve(name));
    while (dir !== dirname(dir)) {
      const manifest = join(dir, 'package.json');
      if (existsSync(manifest)) {
        const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === name && pkg.version) return pkg.version;
      }
      dir = dirname(dir);
    }
  } catch {
    // Not resolvable: report it as unknown rather than failing the stage.
  }
  return 'unknown';
}

export function decoderVersions(): Record<string, string> {
  return {
    jpeg: `libjpeg-turbo wasm (@cornerstonejs/codec-libjpeg-turbo-8bit ${packageVersion('@cornerstonejs/codec-libjpeg-turbo-8bit')})`,
    // Inflate is deterministic: the zlib build cannot change pixels, only this decoder can.
    png: 'built-in row decoder 1 (lib/images/png.ts)',
  };
}
