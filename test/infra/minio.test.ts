/**
 * infra/minio/docker-compose.yml (issue 4), without a Docker engine: MinIO with its stale-upload
 * cleanup, a one-shot `mc` that creates the bucket and applies lifecycle.json (a rule aborting
 * incomplete multipart uploads, the same document as the minio-local overlay's), a service that
 * seeds the demo's data into the bucket where the job looks for it, and the job's services running
 * the image as production does (read-only root, tmpfs /tmp, no capabilities), in dependency order.
 * The job services' commands are run through the real CLI in minio.integ.test.ts.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { minioEnforcesConditionalWrites, readYaml, repoPath } from '../helpers/infra-helpers.js';

const compose = readYaml(repoPath('infra', 'minio', 'docker-compose.yml'));
const services: Record<string, any> = compose.services;

/** The shell script of an `mc` service (entrypoint /bin/sh -c). */
function script(service: any): string {
  expect(service.entrypoint).toEqual(['/bin/sh', '-c']);
  return [service.command].flat().join('\n');
}

/** Services built from the job's Dockerfile. */
const jobServices = Object.entries(services).filter(([, service]) => service.build !== undefined);

describe('the compose file', () => {
  it('opens with a comment saying how to use it', () => {
    expect(readFileSync(repoPath('infra', 'minio', 'docker-compose.yml'), 'utf8')).toMatch(/^# .*docker compose -f infra\/minio\/docker-compose.yml up --build/);
  });

  it('runs MinIO with a health check and a 24 h stale-upload cleanup', () => {
    expect(services.minio.image).toMatch(/^minio\/minio[:@]/);
    expect(services.minio.healthcheck.test).toEqual(['CMD', 'mc', 'ready', 'local']);
    expect(services.minio.environment.MINIO_API_STALE_UPLOADS_EXPIRY).toBe('24h');
  });

  it('declares the conditional writes the pinned MinIO release enforces, to the computing services only', () => {
    expect(minioEnforcesConditionalWrites(services.minio.image), services.minio.image).toBe(true);
    for (const name of ['preliminary', 'final']) expect(services[name].environment.MODEL_METRICS_S3_CONDITIONAL_WRITES, name).toBe('on');
    // report takes no --s3-conditional-writes: the variable would be exit 2 there.
    expect(services.report.environment.MODEL_METRICS_S3_CONDITIONAL_WRITES).toBeUndefined();
  });

  it('creates the bucket and applies the lifecycle rule that aborts incomplete multipart uploads, once MinIO is healthy', () => {
    const init = services['minio-init'];
    expect(init.image).toMatch(/^minio\/mc[:@]/);
    expect(init.depends_on.minio.condition).toBe('service_healthy');
    const text = script(init);
    expect(text).toMatch(/mc mb --ignore-existing local\/model-metrics/);
    expect(text).toMatch(/mc ilm import local\/model-metrics < \/etc\/minio-lifecycle\/lifecycle\.json/);
    expect(init.volumes).toContain('./lifecycle.json:/etc/minio-lifecycle/lifecycle.json:ro');
    const lifecycle = JSON.parse(readFileSync(repoPath('infra', 'minio', 'lifecycle.json'), 'utf8'));
    expect(lifecycle.Rules).toEqual([
      expect.objectContaining({ Status: 'Enabled', Filter: { Prefix: '' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: expect.any(Number) } }),
    ]);
    expect(lifecycle.Rules[0].AbortIncompleteMultipartUpload.DaysAfterInitiation).toBeGreaterThanOrEqual(1);
  });

  it('keeps one lifecycle document for compose and the minio-local overlay', () => {
    const overlayCopy = readFileSync(repoPath('infra', 'kubernetes', 'overlays', 'minio-local', 'lifecycle.json'), 'utf8');
    expect(readFileSync(repoPath('infra', 'minio', 'lifecycle.json'), 'utf8')).toBe(overlayCopy);
  });

  it('seeds the demo data into the bucket and prefix the job reads', () => {
    expect(services.seed.command.slice(0, 3)).toEqual(['demo', '--dir', '/seed/demo']);
    expect(services.seed.depends_on['minio-init'].condition).toBe('service_completed_successfully');
    const upload = script(services['seed-upload']);
    expect(services['seed-upload'].depends_on.seed.condition).toBe('service_completed_successfully');
    const root = services.final.environment.MODEL_METRICS_ROOT as string;
    const target = root.replace(/^s3:\/\//, 'local/');
    expect(upload).toContain(`mc mirror --overwrite /seed/demo/predictions ${target}/predictions`);
    expect(upload).toContain(`mc mirror --overwrite /seed/demo/labels ${target}/labels`);
  });

  it('runs the job image as production does: read-only root, tmpfs /tmp, no capabilities, the CLI as entrypoint', () => {
    expect(jobServices.map(([name]) => name).sort()).toEqual(['final', 'preliminary', 'report', 'seed']);
    for (const [name, service] of jobServices) {
      expect(service.build, name).toEqual({ context: '../..', dockerfile: 'Dockerfile' });
      expect(service.read_only, name).toBe(true);
      expect(service.tmpfs, name).toEqual(['/tmp']);
      expect(service.cap_drop, name).toEqual(['ALL']);
      expect(service.entrypoint, `${name} uses the image's entrypoint (the CLI)`).toBeUndefined();
      // The demo (seed) works on a local folder and refuses the S3 variables, which it does not use.
      if (name === 'seed') expect(service.environment, name).toEqual({});
      else expect(service.environment.MODEL_METRICS_S3_ENDPOINT, name).toBe('http://minio:9000');
    }
    for (const name of ['preliminary', 'final']) expect(services[name].depends_on['seed-upload'].condition).toBe('service_completed_successfully');
    expect(Object.keys(services.report.depends_on).sort()).toEqual(['final', 'preliminary']);
  });
});
