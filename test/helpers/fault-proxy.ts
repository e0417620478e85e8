/**
 * A fault-injecting HTTP proxy for the storage fault tests (issue 5): a real HTTP server on
 * 127.0.0.1 between the S3 client (the store in-process, or the CLI child with `--s3-endpoint`)
 * and s3rver. Requests pass through unchanged (so SigV4 signatures still verify) unless a scripted
 * rule matches, by method, path, query parameter, header and occurrence; then the proxy answers
 * 500 InternalError, 503 SlowDown or any S3 error itself, resets the connection after K body bytes,
 * stalls the body after K bytes, truncates it (a clean close short of Content-Length), hangs before
 * the headers, or drops the response after the server applied the request; a rule can also run
 * an action first (change the object behind the client's back at an exact request). It counts what it
 * injected, so tests can tell "no fault happened" from "the fault was survived".
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pipeline } from 'node:stream';

/** What the proxy does instead of forwarding faithfully. */
export type Fault =
  /** Answer with this status and an S3 XML error body, without forwarding (the server never sees it). */
  | { kind: 'status'; status: number; code: string; message?: string }
  /** Forward; send the headers and `afterBytes` body bytes, then reset the connection (RST). */
  | { kind: 'reset'; afterBytes: number }
  /** Forward; send the headers and `afterBytes` body bytes, then send nothing more until the client gives up. */
  | { kind: 'stall'; afterBytes: number }
  /** Forward; send the headers (full Content-Length) and `afterBytes` body bytes, then close cleanly (FIN). */
  | { kind: 'truncate'; afterBytes: number }
  /** Never forward, never answer: a request that hangs before its headers. */
  | { kind: 'hang' }
  /** Forward and wait for the server's whole response (so the request was applied), then reset the connection. */
  | { kind: 'drop' }
  /** Forward faithfully (with the rule's `before`, to act behind the client's back at an exact request). */
  | { kind: 'pass' };

/** The classic faults, ready to use in rules. */
export const faults = {
  internalError: { kind: 'status', status: 500, code: 'InternalError' },
  slowDown: { kind: 'status', status: 503, code: 'SlowDown' },
  preconditionFailed: { kind: 'status', status: 412, code: 'PreconditionFailed' },
  conditionalConflict: { kind: 'status', status: 409, code: 'ConditionalRequestConflict' },
  reset: (afterBytes: number) => ({ kind: 'reset', afterBytes }),
  stall: (afterBytes: number) => ({ kind: 'stall', afterBytes }),
  truncate: (afterBytes: number) => ({ kind: 'truncate', afterBytes }),
  hang: { kind: 'hang' },
  drop: { kind: 'drop' },
  pass: { kind: 'pass' },
} as const satisfies Record<string, Fault | ((afterBytes: number) => Fault)>;

/** When a rule fires. Every criterion given must hold. */
export interface FaultRule {
  /** HTTP method, e.g. `GET`. */
  method?: string;
  /** Tested against the decoded path, e.g. `/bucket/root/predictions/dt=2026-03-01/a.avro`. */
  path?: RegExp;
  /** A query parameter that must be present, e.g. `uploadId`, `partNumber`, `list-type`, `delete`. */
  query?: string;
  /** A query parameter that must be absent (e.g. `uploadId`, to hit single PUTs but not parts). */
  withoutQuery?: string;
  /** A request header that must be present (lower case), e.g. `x-amz-copy-source`, `range`. */
  header?: string;
  /** A request header that must be absent (lower case), e.g. `range` to hit only first reads. */
  withoutHeader?: string;
  /**
   * Runs when the rule fires, before the fault is applied: e.g. overwrite or delete the object
   * straight on the server, so it changes exactly between two requests of the client.
   */
  before?: () => Promise<unknown>;
  /** Matching requests to let through before the first fault. Default 0. */
  skip?: number;
  /** Faults to inject, on consecutive matching requests after `skip`. Default 1; Infinity for always. */
  times?: number;
  fault: Fault;
}

/** One fault the proxy injected. */
export interface InjectedFault {
  kind: Fault['kind'];
  method: string;
  path: string;
  /** The status code of `status` faults. */
  status?: number;
}

interface ActiveRule extends FaultRule {
  seen: number;
  fired: number;
}

/** The fault-injecting proxy; see the file comment. */
export class FaultProxy {
  /** Every request that reached the proxy, in arrival order, with its Range header if any. */
  readonly requests: Array<{ method: string; path: string; query: URLSearchParams; range?: string }> = [];
  /** Every fault injected, in order. */
  readonly injected: InjectedFault[] = [];
  private rules: ActiveRule[] = [];
  private readonly agent = new http.Agent({ keepAlive: true });
  private readonly server: http.Server;
  private readonly target: URL;
  /** Client sockets held by `stall` and `hang` faults, released on close. */
  private readonly held = new Set<Socket>();
  private port = 0;

  private constructor(upstream: string) {
    this.target = new URL(upstream);
    this.server = http.createServer((request, response) => this.handle(request, response));
    // Keep-alive sockets of the clients under test must not keep close() waiting.
    this.server.keepAliveTimeout = 1000;
  }

  /** Starts a proxy on a free loopback port in front of `upstream` (an http://host:port endpoint). */
  static async start(upstream: string): Promise<FaultProxy> {
    const proxy = new FaultProxy(upstream);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.server.address() as AddressInfo).port;
    return proxy;
  }

  /** The endpoint to give the client (`--s3-endpoint`). */
  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Adds rules; the first matching rule with faults left decides a request's fate. */
  inject(...rules: FaultRule[]): this {
    for (const rule of rules) this.rules.push({ ...rule, seen: 0, fired: 0 });
    return this;
  }

  /** Removes every rule and forgets what was injected and recorded, for the next scenario. */
  reset(): void {
    this.rules = [];
    this.injected.length = 0;
    this.requests.length = 0;
  }

  /** How many faults were injected, of one kind or of all. */
  count(kind?: Fault['kind']): number {
    return kind === undefined ? this.injected.length : this.injected.filter((fault) => fault.kind === kind).length;
  }

  /** Stops listening, releases held sockets and drops the upstream connections. */
  async close(): Promise<void> {
    for (const socket of this.held) socket.destroy();
    this.held.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.agent.destroy();
  }

  private handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    const url = new URL(request.url ?? '/', 'http://proxy');
    const method = request.method ?? 'GET';
    const path = decodeURIComponent(url.pathname);
    const range = request.headers.range;
    this.requests.push({ method, path, query: url.searchParams, ...(range === undefined ? {} : { range }) });
    const rule = this.match(method, path, url.searchParams, request.headers);
    if (rule === undefined) {
      this.forward(request, response, undefined);
      return;
    }
    const fault = rule.fault;
    this.injected.push({ kind: fault.kind, method, path, ...(fault.kind === 'status' ? { status: fault.status } : {}) });
    if (rule.before === undefined) {
      this.apply(fault, request, response);
      return;
    }
    // Paused until the action is done, so the request body waits for the fault or the forward.
    request.pause();
    rule.before().then(
      () => this.apply(fault, request, response),
      (error: unknown) => {
        response.writeHead(500, { 'Content-Type': 'text/plain' });
        response.end(`fault proxy: the rule's before action failed: ${String(error)}`);
      },
    );
  }

  private apply(fault: Fault, request: http.IncomingMessage, response: http.ServerResponse): void {
    if (fault.kind === 'status') {
      // Read the request body first, so the client is not cut off mid-upload (it would see EPIPE, not the status).
      request.resume();
      request.once('end', () => {
        const message = escapeXml(fault.message ?? 'injected by the fault proxy');
        const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${fault.code}</Code><Message>${message}</Message><RequestId>fault-proxy</RequestId></Error>`;
        response.writeHead(fault.status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) });
        response.end(body);
      });
      return;
    }
    if (fault.kind === 'hang') {
      request.resume();
      this.hold(request.socket);
      return;
    }
    this.forward(request, response, fault.kind === 'pass' ? undefined : fault);
  }

  private match(method: string, path: string, query: URLSearchParams, headers: http.IncomingHttpHeaders): ActiveRule | undefined {
    for (const rule of this.rules) {
      if (rule.method !== undefined && rule.method !== method) continue;
      if (rule.path !== undefined && !rule.path.test(path)) continue;
      if (rule.query !== undefined && !query.has(rule.query)) continue;
      if (rule.withoutQuery !== undefined && query.has(rule.withoutQuery)) continue;
      if (rule.header !== undefined && headers[rule.header] === undefined) continue;
      if (rule.withoutHeader !== undefined && headers[rule.withoutHeader] !== undefined) continue;
      rule.seen++;
      if (rule.seen <= (rule.skip ?? 0) || rule.fired >= (rule.times ?? 1)) continue;
      rule.fired++;
      return rule;
    }
    return undefined;
  }

  private forward(request: http.IncomingMessage, response: http.ServerResponse, fault: Exclude<Fault, { kind: 'status' | 'hang' | 'pass' }> | undefined): void {
    const upstreamRequest = http.request(
      {
        host: this.target.hostname,
        port: this.target.port,
        method: request.method,
        path: request.url,
        headers: request.headers,
        agent: this.agent,
      },
      (upstream) => {
        if (fault?.kind === 'drop') {
          // The server has answered, so it applied the request; the client never hears of it.
          upstream.resume();
          upstream.once('end', () => request.socket.resetAndDestroy());
          upstream.once('error', () => request.socket.resetAndDestroy());
          return;
        }
        response.writeHead(upstream.statusCode ?? 502, upstream.headers);
        if (fault === undefined) {
          pipeline(upstream, response, () => undefined);
          return;
        }
        this.cutBody(upstream, request.socket, response, fault);
      },
    );
    upstreamRequest.on('error', (error) => {
      if (!response.headersSent) response.writeHead(502, { 'Content-Type': 'text/plain' });
      response.end(`fault proxy: upstream failed: ${error.message}`);
    });
    pipeline(request, upstreamRequest, () => undefined);
    // The client gave up (e.g. its idle timeout on a stall): stop talking to the server too.
    response.once('close', () => {
      if (!response.writableFinished) upstreamRequest.destroy();
    });
  }

  /** Sends `afterBytes` of the body, then resets, stalls or closes cleanly. */
  private cutBody(
    upstream: http.IncomingMessage,
    socket: Socket,
    response: http.ServerResponse,
    fault: { kind: 'reset' | 'stall' | 'truncate'; afterBytes: number },
  ): void {
    let sent = 0;
    let cut = false;
    const finish = (): void => {
      if (cut) return;
      cut = true;
      upstream.destroy();
      // Wait until what was written reached the socket, so exactly `afterBytes` arrive.
      response.write('', () => {
        if (fault.kind === 'reset') socket.resetAndDestroy();
        else if (fault.kind === 'truncate') socket.end();
        else this.hold(socket);
      });
    };
    upstream.on('data', (chunk: Buffer) => {
      if (cut) return;
      const room = fault.afterBytes - sent;
      if (chunk.length < room) {
        sent += chunk.length;
        response.write(chunk);
        return;
      }
      if (room > 0) response.write(chunk.subarray(0, room));
      sent += Math.max(room, 0);
      finish();
    });
    // A body shorter than afterBytes is cut at its end, before the final chunk terminator.
    upstream.once('end', finish);
    upstream.once('error', () => response.destroy());
  }

  private hold(socket: Socket): void {
    this.held.add(socket);
    socket.once('close', () => this.held.delete(socket));
  }
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
