// `MODULE_URLS_FILE=F node --import ./test/helpers/module-urls.mjs …` records every module the
// program loads into F, one URL a line: the ESM imports as module-urls-hook.mjs resolves them, and,
// when the process exits, the CommonJS files in require's cache (packages loaded with require()
// from a CommonJS package do not pass the ESM hook).
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

const file = process.env.MODULE_URLS_FILE;
if (file === undefined || file === '') throw new Error('module-urls.mjs: set MODULE_URLS_FILE to the file that receives the URLs');
register(new URL('./module-urls-hook.mjs', import.meta.url), { data: { file } });
const require = createRequire(import.meta.url);
process.on('exit', () => {
  const cached = Object.keys(require.cache).map((path) => pathToFileURL(path).href);
  if (cached.length > 0) appendFileSync(file, `${cached.join('\n')}\n`);
});
