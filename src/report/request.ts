/**
 * The options of `report` (SPEC §7) parsed and checked once into a ReportRequest; every mistake is a
 * UsageError (exit 2) naming the option, what was given and what is accepted.
 */
import type { RawOptions } from '../config/resolve.js';
import { oneOf } from '../config/resolve.js';
import { dateRange } from '../calendar.js';
import { UsageError } from '../errors.js';
import { type ReportRequest, reportStages } from './build.js';
import { reportGrains } from './rollup.js';

/** `KEY[=VALUE]` of --slice. */
export function parseSlice(text: string): { key: string; value?: string } {
  const at = text.indexOf('=');
  const key = at < 0 ? text : text.slice(0, at);
  const value = at < 0 ? undefined : text.slice(at + 1);
  if (key === '' || value === '') throw new UsageError(`--slice must be KEY or KEY=VALUE, e.g. --slice region or --slice region=eu, got ${JSON.stringify(text)}`, { option: '--slice' });
  return value === undefined ? { key } : { key, value };
}

/** `NAME[@VERSION]` of --model (the last @ splits, so a name may hold one). */
export function parseModel(text: string): { name: string; version?: string } {
  const at = text.lastIndexOf('@');
  const name = at < 0 ? text : text.slice(0, at);
  const version = at < 0 ? undefined : text.slice(at + 1);
  if (name === '' || version === '') throw new UsageError(`--model must be NAME or NAME@VERSION, e.g. --model eta or --model eta@v2, got ${JSON.stringify(text)}`, { option: '--model' });
  return version === undefined ? { name } : { name, version };
}

/** The report request of raw options. */
export function reportRequestOf(raw: RawOptions): ReportRequest {
  for (const [name, example] of [['from', '2026-03-02'], ['to', '2026-03-08']] as const) {
    if (raw[name] === undefined) throw new UsageError(`--${name} is required, e.g. --${name} ${example}`, { option: `--${name}` });
  }
  const from = raw.from as string;
  const to = raw.to as string;
  dateRange(from, to);
  const request: ReportRequest = { from, to, stage: oneOf(raw, 'stage', reportStages, 'final'), by: oneOf(raw, 'by', reportGrains, 'day') };
  if (raw.slice !== undefined) request.slice = parseSlice(raw.slice as string);
  if (raw.model !== undefined) request.model = parseModel(raw.model as string);
  return request;
}
