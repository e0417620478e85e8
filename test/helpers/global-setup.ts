/**
 * Vitest global setup: starts the loopback S3 server (s3rver, in a child process) once for the
 * whole run, hands its endpoint to tests as `inject('s3Endpoint')`, and stops it on teardown.
 */
import type { TestProject } from 'vitest/node';
import { startS3rver } from './s3rver.js';

/** Starts s3rver, provides `s3Endpoint`, and returns the teardown that stops it. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startS3rver();
  project.provide('s3Endpoint', server.endpoint);
  return async () => {
    await server.stop();
  };
}
