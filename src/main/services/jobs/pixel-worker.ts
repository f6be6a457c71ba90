/** The pixel helper thread's loop (see pixel-thread.ts): one split reader per opened source. */
import type { MessagePort } from 'node:worker_threads';
import { toApiError } from '../../../shared/errors';
import { SplitPixels } from '../../dataset/split-pixels';
import type { PixelMessage, PixelReply } from './pixel-thread';

export function servePixels(port: MessagePort): void {
  const sources = new Map<number, SplitPixels>();
  port.on('message', async (m: PixelMessage) => {
    if (m.type === 'open') {
      sources.set(m.source, new SplitPixels(m.spec));
      return;
    }
    let reply: PixelReply;
    try {
      const s = sources.get(m.source);
      if (!s) throw new Error(`unknown pixel source ${m.source}`);
      const opts = { epoch: m.epoch, augment: m.augment };
      const data = m.table ? await s.loadScaled(m.indices, opts, m.table) : await s.load(m.indices, opts);
      reply = { type: 'loaded', id: m.id, data };
      port.postMessage(reply, [data.buffer as ArrayBuffer]);
    } catch (err) {
      reply = { type: 'failed', id: m.id, ...toApiError(err) };
      port.postMessage(reply);
    }
  });
}
