/**
 * Parsing of the dataset URIs given on the command line (`--root`, `--predictions`, …): `s3://bucket/prefix`,
 * `file:///abs/path` or a plain local path. Pure: no I/O, no environment besides the working directory
 * that relative paths resolve against.
 */
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../errors.js';

/** A parsed store URI: an S3 bucket and key prefix, or an absolute local directory. */
export type StoreLocation = { kind: 's3'; bucket: string; prefix: string } | { kind: 'local'; path: string };

const EXPECTED_FORMS = 's3://bucket/prefix, file:///absolute/path or a local path';

/** `scheme://` at the start, per RFC 3986 §3.1 (two characters at least, so `C:\data` stays a path). */
const SCHEME_WITH_AUTHORITY = /^([a-zA-Z][a-zA-Z0-9+.-]+):\/\//;

/** Parses a store URI given for `option` (e.g. `--root`); throws E_USAGE naming the option and the expected forms. */
export function parseStoreUri(uri: string, option: string): StoreLocation {
  if (uri.length === 0) {
    throw new UsageError(`${option} is empty; expected ${EXPECTED_FORMS}`, { option, uri });
  }
  if (/^file:/i.test(uri)) return parseFileUri(uri, option);
  const scheme = SCHEME_WITH_AUTHORITY.exec(uri)?.[1]?.toLowerCase();
  if (scheme === 's3') return parseS3Uri(uri, option);
  if (scheme !== undefined) {
    throw new UsageError(
      `${option} ${JSON.stringify(uri)} uses the unsupported scheme "${scheme}://"; expected ${EXPECTED_FORMS} ` +
        '(S3-compatible stores such as MinIO use s3:// with --s3-endpoint)',
      { option, uri },
    );
  }
  return { kind: 'local', path: resolve(uri) };
}

/** Joins a child path (e.g. `predictions`) onto a store URI or local path, with exactly one `/` between them. */
export function joinUri(base: string, child: string): string {
  const trimmedChild = child.replace(/^\/+|\/+$/g, '');
  if (trimmedChild.length === 0) return base;
  if (trimmedChild.split('/').some((segment) => segment === '..' || segment === '.' || segment === '')) {
    throw new UsageError(
      `cannot join ${JSON.stringify(child)} onto ${JSON.stringify(base)}: expected a relative path without ".", ".." or empty segments`,
      { uri: base, key: child },
    );
  }
  // Keep the `scheme://` of the base intact: `file:///` joined with `x` is `file:///x`, not `file:/x`.
  const authority = /^[a-zA-Z][a-zA-Z0-9+.-]+:\/\//.exec(base)?.[0] ?? '';
  return `${authority}${base.slice(authority.length).replace(/\/+$/, '')}/${trimmedChild}`;
}

function parseS3Uri(uri: string, option: string): StoreLocation {
  const rest = uri.slice('s3://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  const rawPrefix = slash === -1 ? '' : rest.slice(slash + 1);
  if (bucket.length === 0) {
    throw new UsageError(`${option} ${JSON.stringify(uri)} has no bucket; expected s3://bucket/prefix`, { option, uri });
  }
  const bucketProblem = describeInvalidBucket(bucket);
  if (bucketProblem !== undefined) {
    throw new UsageError(
      `${option} ${JSON.stringify(uri)} has an invalid bucket name "${bucket}": ${bucketProblem}; expected s3://bucket/prefix ` +
        'with a bucket of 3-63 lowercase letters, digits, dots and hyphens',
      { option, uri },
    );
  }
  const prefix = rawPrefix.replace(/^\/+|\/+$/g, '');
  if (prefix.length > 0) {
    const segments = prefix.split('/');
    if (segments.some((segment) => segment === '..' || segment === '.')) {
      throw new UsageError(
        `${option} ${JSON.stringify(uri)} has a "." or ".." segment in its prefix; S3 keys are literal, so write the prefix out in full`,
        { option, uri },
      );
    }
    if (segments.includes('')) {
      throw new UsageError(
        `${option} ${JSON.stringify(uri)} has an empty segment ("//") in its prefix; expected s3://bucket/a/b without doubled slashes`,
        { option, uri },
      );
    }
  }
  return { kind: 's3', bucket, prefix };
}

/**
 * Why a bucket name breaks the S3 naming rules, or undefined when it is valid.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
 */
function describeInvalidBucket(bucket: string): string | undefined {
  if (bucket.length < 3 || bucket.length > 63) return `it has ${bucket.length} characters, expected 3 to 63`;
  if (!/^[a-z0-9.-]+$/.test(bucket)) return 'only lowercase letters, digits, dots and hyphens are allowed';
  if (!/^[a-z0-9]/.test(bucket) || !/[a-z0-9]$/.test(bucket)) return 'it must start and end with a letter or digit';
  if (bucket.includes('..')) return 'it must not contain two adjacent dots';
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(bucket)) return 'it must not look like an IP address';
  return undefined;
}

function parseFileUri(uri: string, option: string): StoreLocation {
  if (!/^file:\/\//i.test(uri)) {
    throw new UsageError(
      `${option} ${JSON.stringify(uri)} is not an absolute file URI; expected file:///absolute/path, or a plain path for a relative directory`,
      { option, uri },
    );
  }
  const afterScheme = uri.slice('file://'.length);
  if (!afterScheme.startsWith('/') && !/^localhost\//i.test(afterScheme)) {
    throw new UsageError(
      `${option} ${JSON.stringify(uri)} is not an absolute file URI (the part after file:// must start with "/"); ` +
        'expected file:///absolute/path, or a plain path for a relative directory',
      { option, uri },
    );
  }
  // The URL parser would silently normalise ".." away; a root that climbs out of itself is a mistake.
  const rawPath = afterScheme.replace(/[?#].*$/, '');
  if (rawPath.split('/').some((segment) => segment === '..' || segment === '.')) {
    throw new UsageError(
      `${option} ${JSON.stringify(uri)} has a "." or ".." segment; expected file:///absolute/path written out in full`,
      { option, uri },
    );
  }
  let path: string;
  try {
    const url = new URL(uri);
    if (url.search !== '' || url.hash !== '') {
      throw new Error('a file URI names a directory and takes no query string or fragment');
    }
    path = fileURLToPath(url);
  } catch (error) {
    throw new UsageError(
      `${option} ${JSON.stringify(uri)} is not a valid file URI (${error instanceof Error ? error.message : String(error)}); ` +
        'expected file:///absolute/path with %-encoded special characters',
      { option, uri },
      { cause: error },
    );
  }
  if (!isAbsolute(path)) {
    throw new UsageError(`${option} ${JSON.stringify(uri)} does not name an absolute path; expected file:///absolute/path`, {
      option,
      uri,
    });
  }
  return { kind: 'local', path: stripTrailingSeparators(path) };
}

function stripTrailingSeparators(path: string): string {
  const stripped = path.replace(/\/+$/, '');
  return stripped.length === 0 ? '/' : stripped;
}

/** The root URI of the S3 store at `bucket` and `prefix` (`s3://bucket/prefix`, or `s3://bucket` at the bucket root). */
export function s3RootUri(bucket: string, prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? `s3://${bucket}` : `s3://${bucket}/${trimmed}`;
}

/** The URI of `key` in the S3 store at `bucket` and `prefix`: `s3://bucket/prefix/key`. */
export function s3ObjectUri(bucket: string, prefix: string, key: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  return `s3://${bucket}/${trimmed === '' ? '' : `${trimmed}/`}${key}`;
}
