/**
 * Module hooks (node:module `register`) that let a plain worker thread import the project's
 * TypeScript sources, as vitest does for the test files: a `./x.js` import from a .ts file resolves
 * to `./x.ts` when only that exists, and .ts files are transpiled with the project's own TypeScript
 * (types erased, nothing checked). Used by avro-fuzz-worker.mjs only.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** `./x.js` imported from a .ts file is `./x.ts` when no .js file is there (TypeScript's NodeNext convention). */
export async function resolve(specifier, context, nextResolve) {
  if (specifier.startsWith('.') && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) {
    const url = new URL(specifier, context.parentURL);
    if (!existsSync(fileURLToPath(url))) return nextResolve(`${url.href.slice(0, -'.js'.length)}.ts`, context);
  }
  return nextResolve(specifier, context);
}

/** Loads a .ts file as an ES module with its types stripped. */
export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return nextLoad(url, context);
  const file = fileURLToPath(url);
  const { outputText } = ts.transpileModule(await readFile(file, 'utf8'), {
    fileName: file,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  });
  return { format: 'module', source: outputText, shortCircuit: true };
}
