// A Node module-resolution hook for start-up tests: prints `module-trace: <specifier>` on stderr
// for every bare specifier that names an @aws-sdk package, so a test can tell whether the SDK loaded.
export async function resolve(specifier, context, next) {
  if (specifier.startsWith('@aws-sdk/')) process.stderr.write(`module-trace: ${specifier}\n`);
  return next(specifier, context);
}
