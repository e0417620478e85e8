// A module-resolution hook for start-up tests: appends every URL an ESM import resolves to (one a
// line) to the file named by MODULE_URLS_FILE. See module-urls.mjs.
import { appendFileSync } from 'node:fs';

let file;

export function initialize(data) {
  file = data.file;
}

export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(file, `${resolved.url}\n`);
  return resolved;
}
