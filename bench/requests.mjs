// `npm run build && node bench/requests.mjs [--predictions N] [--modes auto,on] [--cli bin/model-metrics.js]`:
// counts the S3 requests of one `run --stage preliminary` on the loopback S3 server (s3rver), once
// per --s3-conditional-writes mode. A day of N predictions (default 20,000, 24 hourly files) and its
// labels are generated straight into s3rver; the CLI then runs as a child process through a
// recording HTTP proxy, and the requests are counted in all and on the run leases (`_lease.json`),
// by method. s3rver evaluates no precondition, so mode `on` there only shows which requests an
// enforcing store (AWS S3, recent MinIO) is sent; it is not a safe setting for s3rver itself.
import { execFile, spawn } from 'node:child_process';
import http from 'node:http';
import { pipeline } from 'node:stream';
import { promisify } from 'node:util';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { generateSample } from '../dist/src/demo/generate.js';
import { createS3Client, destroyStores, openStore } from '../dist/src/storage/index.js';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const predictions = Number(flag('predictions', '20000'));
const modes = flag('modes', 'auto,on').split(',');
const cli = flag('cli', 'bin/model-metrics.js');
const date = '2026-03-02';
const credentials = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
Object.assign(process.env, credentials);

/** s3rver in its own process (DES continuation tokens need OpenSSL's legacy provider). */
async function startS3rver() {
  const child = spawn(process.execPath, ['--openssl-legacy-provider', 'test/helpers/s3rver-server.mjs'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code})`)));
    child.stdout.setEncoding('utf8').on('data', (text) => {
      out += text;
      if (out.includes('\n')) resolve(JSON.parse(out.slice(0, out.indexOf('\n'))).port);
    });
  });
  child.removeAllListeners('exit');
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') };
}

/** A loopback proxy in front of `upstream` that records method and path of every request. */
async function startProxy(upstream) {
  const target = new URL(upstream);
  const requests = [];
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((request, response) => {
    requests.push({ method: request.method, path: decodeURIComponent(new URL(request.url, 'http://proxy').pathname) });
    const forward = http.request({ host: target.hostname, port: target.port, method: request.method, path: request.url, headers: request.headers, agent }, (upstreamResponse) => {
      response.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.headers);
      pipeline(upstreamResponse, response, () => undefined);
    });
    forward.on('error', (error) => response.end(String(error)));
    pipeline(request, forward, () => undefined);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${server.address().port}`,
    requests,
    close: () => {
      server.closeAllConnections();
      server.close();
      agent.destroy();
    },
  };
}

const s3rver = await startS3rver();
const proxy = await startProxy(s3rver.endpoint);
const settings = { endpoint: s3rver.endpoint, forcePathStyle: true, region: 'us-east-1' };
const bucket = 'mm-requests';
try {
  const client = createS3Client(settings);
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  client.destroy();
  const rows = [];
  for (const mode of modes) {
    const root = `s3://${bucket}/${mode}`;
    const sample = await generateSample(openStore(`${root}/predictions`, settings, '--predictions'), openStore(`${root}/labels`, settings, '--labels'), { from: date, days: 1, predictionsPerDay: predictions, filesPerDay: 24 });
    destroyStores();
    proxy.requests.length = 0;
    const modeArgs = mode === 'default' ? [] : ['--s3-conditional-writes', mode];
    const run = ['run', '--date', date, '--stage', 'preliminary', '--as-of', '2026-03-03T06:00:00Z', '--root', root, '--s3-endpoint', proxy.endpoint, '--s3-force-path-style', '--log-level', 'warn', ...modeArgs];
    await promisify(execFile)(process.execPath, [cli, ...run], { env: { PATH: process.env.PATH ?? '', ...credentials }, maxBuffer: 64 * 1024 * 1024 });
    const lease = proxy.requests.filter((r) => r.path.endsWith('/_lease.json'));
    const byMethod = {};
    for (const r of lease) byMethod[r.method] = (byMethod[r.method] ?? 0) + 1;
    rows.push({ mode, predictions: sample.predictions, requests: proxy.requests.length, lease: lease.length, leaseByMethod: byMethod });
  }
  for (const row of rows) console.log(JSON.stringify(row));
} finally {
  proxy.close();
  s3rver.stop();
}
