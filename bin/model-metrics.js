#!/usr/bin/env -S node --max-semi-space-size=64
// The published entry point: runs the compiled CLI (built by `npm run build`, which `npm ci` runs via `prepare`).
// --max-semi-space-size=64 (in the shebang; the Dockerfile passes it too; the heap growth below is
// set at run time instead, so every way of starting this file gets it): with the default young
// generation, records alive across the writer's awaits survive scavenges and get promoted; 64 MiB
// semi-spaces cut scavenge time about sevenfold on a 1M-prediction day (npm run bench).
// On Node 20 the AWS SDK prints a multi-line support warning to stderr, which would break the
// "stderr is JSON lines" contract; the Dockerfile runs Node 22, where it does not apply.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// A closed stdout (`model-metrics report | head`) is the reader's choice, not a failure.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});
// The heaps' growth (src/heap-tuning.ts): set before anything runs, so the worker threads get it too.
const { tuneHeap } = await import('../dist/src/heap-tuning.js');
tuneHeap();
const { main } = await import('../dist/jobs/main.js');

process.exitCode = await main(process.argv.slice(2));
