/** `finetune serve`: the UI and API on 127.0.0.1 with a per-start token. */
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Booted } from '../../main/boot';
import { projectRoot } from '../../main/boot';
import { startServer } from '../../main/server';
import { AppError } from '../../shared/errors';

export async function serveCommand(args: string[], app: Booted): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      'allow-remote': { type: 'boolean' },
      token: { type: 'string' },
      'static-dir': { type: 'string' },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new AppError('bad_arguments', `--port must be 0..65535, got "${values.port}".`);
  const host = values.host!;
  const loopback = ['127.0.0.1', 'localhost', '::1'].includes(host);
  if (!loopback && !values['allow-remote']) {
    throw new AppError('bad_arguments', `Binding to ${host} exposes your photos and models to the network. Add --allow-remote if you mean it.`);
  }
  const staticDir = values['static-dir'] ?? path.join(projectRoot(), 'out', 'renderer');
  const server = await startServer({ api: app.api, events: app.ctx.events, staticDir, host, port, token: values.token ?? process.env.FINETUNE_SERVE_TOKEN });
  if (!loopback) console.warn(`warning: listening on ${host}: anyone who can reach this address and has the token can use the app.`);
  console.log(`Finetune Studio is serving at ${server.urlWithToken}`);
  console.log('Open that URL in a browser. Press Ctrl+C to stop.');
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
  return 0;
}
