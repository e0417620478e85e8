/**
 * Vitest global setup: starts the loopback S3 server (s3rver, in a child process) once for the
 * whole run, hands its endpoint to tests as `inject('s3Endpoint')`, names the reliability tally file
 * (`inject('reliabilityLog')`), and on teardown stops the server and prints the reliability table.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { renderReliabilityTable } from './reliability-table.js';
import { startS3rver } from './s3rver.js';

/** Starts s3rver, provides `s3Endpoint` and `reliabilityLog`, and returns the teardown. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startS3rver();
  const tallyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-metrics-reliability-'));
  const tally = path.join(tallyDir, 'tally.jsonl');
  fs.writeFileSync(tally, '');
  project.provide('s3Endpoint', server.endpoint);
  project.provide('reliabilityLog', tally);
  return async () => {
    await server.stop();
    const text = fs.readFileSync(tally, 'utf8');
    if (text.trim() !== '') {
      const table = renderReliabilityTable(text);
      console.log(`\n${table}\n`);
      // Also kept beside the JSON results, for CI logs and the closing note.
      fs.writeFileSync('reliability-table.txt', `${table}\n`);
    }
    fs.rmSync(tallyDir, { recursive: true, force: true });
  };
}
