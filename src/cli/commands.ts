/** The command table: name -> summary, usage and runner. Commands are loaded on demand. */
import type { Booted } from '../main/boot';

export interface Command {
  summary: string;
  usage: string;
  run(args: string[], app: Booted): Promise<number>;
}

export const COMMANDS: Record<string, Command> = {
  doctor: {
    summary: 'what this machine can do: backend, threads, folders, versions',
    usage: 'finetune doctor [--json]',
    run: async (args, app) => (await import('./commands/doctor')).doctorCommand(args, app),
  },
  serve: {
    summary: 'serve the app to a browser on 127.0.0.1',
    usage: 'finetune serve [--port N] [--host ADDR --allow-remote] [--no-open]',
    run: async (args, app) => (await import('./commands/serve')).serveCommand(args, app),
  },
  models: {
    summary: 'list the known backbones and whether they are available offline',
    usage: 'finetune models [--json]',
    run: async (args, app) => (await import('./commands/doctor')).modelsCommand(args, app),
  },
};

const GLOBAL = `Global options:
  --home DIR              where the log, caches and checkpoints live (env FINETUNE_HOME;
                          default: the OS's app-data folder)
  --models-mirror DIR|URL a folder or URL laid out like the models' canonical locations;
                          repeatable (env FINETUNE_MODELS_MIRROR, comma-separated)
  --help, --version`;

export function usage(command?: string): string {
  const c = command ? COMMANDS[command] : undefined;
  if (c) return `${c.usage}\n\n${c.summary}\n\n${GLOBAL}`;
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  const lines = Object.entries(COMMANDS).map(([k, v]) => `  ${k.padEnd(width)}  ${v.summary}`);
  return `Finetune Studio: fine-tune a pretrained image classifier on your own photos.

Usage: finetune <command> [options]

Commands:
${lines.join('\n')}

${GLOBAL}

Run \`finetune <command> --help\` for a command's options.`;
}
