#!/usr/bin/env node
// The published entry point: runs the compiled CLI (built by `npm run build`, which `npm ci` runs via `prepare`).
// On Node 20 the AWS SDK prints a multi-line support warning to stderr, which would break the
// "stderr is JSON lines" contract; the Dockerfile runs Node 22, where it does not apply.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const { main } = await import('../dist/src/cli/main.js');

process.exitCode = await main(process.argv.slice(2));
