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
  import: {
    summary: 'import an image folder: check it, snapshot it, split it',
    usage: 'finetune import DIR [--name N] [--val 0.2] [--test 0] [--seed S] [--json]',
    run: async (args, app) => (await import('./commands/import')).importCommand(args, app),
  },
  eval: {
    summary: "evaluate a run's best checkpoint: accuracy, per-class P/R/F1, confusion, top losses",
    usage: 'finetune eval RUN [--split val|test] [--checkpoint best|last] [--tta none|flip] [--json]',
    run: async (args, app) => (await import('./commands/evaluate')).evalCommand(args, app),
  },
  export: {
    summary: 'export a run as a tfjs LayersModel folder, with a parity check',
    usage: 'finetune export RUN --out DIR [--json]',
    run: async (args, app) => (await import('./commands/evaluate')).exportCommand(args, app),
  },
  predict: {
    summary: 'predict images with an exported model folder (or a run)',
    usage: 'finetune predict MODEL_DIR IMAGE_OR_FOLDER... [--json|--csv]   |   finetune predict --run RUN IMAGE...',
    run: async (args, app) => (await import('./commands/evaluate')).predictCommand(args, app),
  },
  runs: {
    summary: 'list, show, compare, tag, note, delete and export runs of the log',
    usage: 'finetune runs list|show|compare|tag|note|delete|export ... (finetune runs --help)',
    run: async (args, app) => (await import('./commands/runs')).runsCommand(args, app.ctx, app.store),
  },
  train: {
    summary: 'fine-tune a backbone on an image folder (the run goes to the log)',
    usage:
      'finetune train --data DIR [--model ID|DIR] [--strategy head|progressive|discriminative|full|auto]\n' +
      '               [--config FILE.json] [--epochs N] [--batch-size N] [--seed S] [--val 0.2] [--name N] [--experiment E] [--json]',
    run: async (args, app) => (await import('./commands/train')).trainCommand(args, app),
  },
  'lr-find': {
    summary: 'learning-rate range test: loss against lr, with suggestions',
    usage: 'finetune lr-find --data DIR [--model ID] [--strategy S] [--config FILE.json] [--steps N] [--json]',
    run: async (args, app) => (await import('./commands/train')).lrFindCommand(args, app),
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
