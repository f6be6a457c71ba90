/**
 * `finetune serve`: the same services over HTTP (POST /api/invoke/<verb>) and a WebSocket
 * for events (/api/events), plus the built renderer. Bound to 127.0.0.1 by default, guarded
 * like Jupyter: a random token made at each start (URL ?token=, then a SameSite cookie, or
 * an `Authorization: Bearer` header), and Host/Origin checks against DNS rebinding.
 */
import http from 'node:http';
import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Api } from '../../shared/contract';
import type { EventHub } from '../services/events';
import { invokeVerb } from '../services/gate';
import { serveStatic } from './static';
import { checkRequest, type GuardConfig } from './guard';

export interface ServeOptions {
  api: Api;
  events: EventHub;
  /** Folder with the built renderer (index.html + assets). */
  staticDir: string;
  host?: string;
  port?: number;
  /** Fixed token (tests); a random one otherwise. */
  token?: string;
}

export interface RunningServer {
  url: string;
  /** The URL with the token, to print and open. */
  urlWithToken: string;
  port: number;
  token: string;
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024 * 1024;

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error(`Request body over ${MAX_BODY / 2 ** 20} MB`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

/** Start serving; resolves once listening. */
export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  const token = opts.token ?? crypto.randomBytes(24).toString('hex');
  const guard: GuardConfig = { token, host, port: 0 };

  const server = http.createServer(async (req, res) => {
    const verdict = checkRequest(req, guard);
    if (!verdict.ok) return sendJson(res, verdict.status, { ok: false, error: { code: 'forbidden', message: verdict.message } });
    if (verdict.setCookie) res.setHeader('set-cookie', verdict.setCookie);
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      if (url.pathname.startsWith('/api/invoke/')) {
        if (req.method !== 'POST') return sendJson(res, 405, { ok: false, error: { code: 'method', message: 'Use POST.' } });
        const verb = decodeURIComponent(url.pathname.slice('/api/invoke/'.length));
        let args: unknown = {};
        const body = await readBody(req);
        if (body) {
          try {
            args = JSON.parse(body);
          } catch {
            return sendJson(res, 400, { ok: false, error: { code: 'bad_json', message: 'The request body is not valid JSON.' } });
          }
        }
        return sendJson(res, 200, await invokeVerb(opts.api, verb, args));
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { ok: false, error: { code: 'method', message: 'Only GET here.' } });
      serveStatic(opts.staticDir, url.pathname, res, guard);
    } catch (err) {
      sendJson(res, 500, { ok: false, error: { code: 'internal', message: (err as Error).message } });
    }
  });

  const wss = new WebSocketServer({ noServer: true });
  const sockets = new Set<WebSocket>();
  server.on('upgrade', (req, socket, head) => {
    const verdict = checkRequest(req, guard);
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!verdict.ok || url.pathname !== '/api/events') {
      socket.write(`HTTP/1.1 ${verdict.ok ? 404 : verdict.status} Refused\r\nConnection: close\r\n\r\n`);
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      ws.on('close', () => sockets.delete(ws));
    });
  });
  const unsubscribe = opts.events.subscribe((envelope) => {
    const text = JSON.stringify(envelope);
    for (const ws of sockets) if (ws.readyState === ws.OPEN) ws.send(text);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  guard.port = port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const url = `http://${shownHost}:${port}/`;
  return {
    url,
    urlWithToken: `${url}?token=${token}`,
    port,
    token,
    close: async () => {
      unsubscribe();
      for (const ws of sockets) ws.terminate();
      wss.close();
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
