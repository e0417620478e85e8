/**
 * `model-metrics report` (SPEC §7): reads the committed metrics of a range, rolls them up exactly
 * and renders one format, on stdout or into `--out FILE` (written whole or not at all).
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeAtomically } from '../src/cli/reporting.js';
import { type TextFormat, documentTable, renderReport, trailerLines } from '../src/cli/report-view.js';
import type { ReportFormat } from '../src/cli/format.js';
import { UsageError } from '../src/errors.js';
import { type Report, type ReportRequest, buildReport } from '../src/report/build.js';
import { renderHtml } from '../src/report/html.js';
import type { ObjectStore } from '../src/storage/types.js';

export { type Report, type ReportRequest, type ReportRow, buildReport } from '../src/report/build.js';

/** The report rendered in any format of `report --format`. */
export async function renderAny(report: Report, format: ReportFormat): Promise<string> {
  if (format === 'html') return renderHtml(report, documentTable(report), trailerLines(report));
  return `${renderReport(report, format as TextFormat)}\n`;
}

/** What a non-regular file is, for the --out message. */
function fileKind(stat: fs.Stats): string {
  if (stat.isDirectory()) return 'a folder';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isFIFO()) return 'a named pipe';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Checks that `--out FILE` can be written before any store is read: its folder exists and is
 * writable, and it is not a folder, a device or another special file, which the atomic rename
 * would replace. A symbolic link is followed: the report replaces the file it points to.
 * UsageError (exit 2) naming --out otherwise.
 */
export function checkOutFile(file: string): void {
  const fail = (why: string, cause?: unknown): never => {
    throw new UsageError(`--out ${file}: ${why}; choose a regular file in an existing, writable folder (or leave out --out to print on stdout)`, { option: '--out', path: path.resolve(file) }, { cause });
  };
  try {
    const stat = fs.statSync(file, { throwIfNoEntry: false });
    if (stat !== undefined && !stat.isFile()) fail(`is ${fileKind(stat)}`);
    const folder = path.dirname(outTarget(file));
    try {
      fs.accessSync(folder, fs.constants.W_OK);
    } catch (error) {
      fail(`cannot write into ${folder} (${(error as NodeJS.ErrnoException).code ?? String(error)})`, error);
    }
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    fail(code === 'ENOTDIR' ? `${path.dirname(path.resolve(file))} is not a folder (ENOTDIR)` : `cannot be checked (${code ?? String(error)})`, error);
  }
}

/** The path the report replaces: `file`, or the file a symbolic link at `file` points to. */
function outTarget(file: string): string {
  return fs.lstatSync(file, { throwIfNoEntry: false })?.isSymbolicLink() === true ? fs.realpathSync(file) : path.resolve(file);
}

/** Writes rendered text to `file` atomically; UsageError naming --out when that fails. */
export function writeOutFile(file: string, text: string): void {
  try {
    writeAtomically(outTarget(file), text);
  } catch (error) {
    throw new UsageError(`--out ${file}: cannot write the report (${(error as NodeJS.ErrnoException).code ?? String(error)}); choose a regular file in an existing, writable folder`, { option: '--out', path: path.resolve(file) }, { cause: error });
  }
}

/**
 * Builds the report of `request` from the committed metrics in `metrics` and writes it as one
 * self-contained HTML file (the `demo` ends with this). Returns the report it drew.
 */
export async function writeHtmlReport(metrics: ObjectStore, request: ReportRequest, file: string): Promise<Report> {
  checkOutFile(file);
  const report = await buildReport(metrics, request);
  writeOutFile(file, await renderAny(report, 'html'));
  return report;
}
