/**
 * TrainConfig: every knob of a fine-tuning run, as one zod schema with defaults. Strategy
 * presets (strategies.ts) are partial configs over these defaults; the fully resolved config
 * is what a run logs, so a run can always be repeated from its log alone.
 *
 * Epoch numbers are 1-based everywhere the user sees them ("after epoch 3" = once 3 epochs
 * have completed). Learning rates are peak rates; schedules multiply them.
 */
import { z } from 'zod';
import { AppError } from '../../shared/errors';

export const STRATEGIES = ['head', 'progressive', 'discriminative', 'full', 'auto'] as const;
export type Strategy = (typeof STRATEGIES)[number];

export const SCHEDULE_NAMES = ['constant', 'step', 'multi-step', 'exponential', 'cosine', 'cosine-restarts', 'cyclical', 'one-cycle'] as const;
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];
export const CYCLIC_MODES = ['triangular', 'triangular2', 'exp_range'] as const;
export const OPTIMIZER_NAMES = ['sgd', 'adam', 'adamw'] as const;
export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];
export const MONITORS = ['val_loss', 'val_accuracy', 'train_loss', 'train_accuracy'] as const;
export type Monitor = (typeof MONITORS)[number];

/** zod's enum message lists the accepted values too, but ours names the field and the input. */
function namedEnum<T extends readonly [string, ...string[]]>(what: string, values: T) {
  return z.string().superRefine((v, ctx) => {
    if (!(values as readonly string[]).includes(v)) {
      ctx.addIssue({ code: 'custom', message: `Unknown ${what} "${v}". Expected one of: ${values.join(', ')}.` });
    }
  }) as unknown as z.ZodType<T[number], T[number]>;
}

const positive = z.number().positive();
const fraction = z.number().min(0).max(1);

export const scheduleSchema = z.object({
  name: namedEnum('schedule', SCHEDULE_NAMES).default('constant'),
  /** 'phase': the schedule restarts at each unfreezing stage (fastai fine_tune); 'run': one curve over all epochs. */
  scope: namedEnum('schedule scope', ['phase', 'run'] as const).default('phase'),
  /** step: multiply by gamma every stepEpochs. exponential: gamma per epoch. exp_range: gamma per batch. */
  gamma: positive.default(0.1),
  stepEpochs: positive.default(1),
  /** multi-step: epochs (counted from the start of the schedule's scope) where lr is multiplied by gamma. */
  milestones: z.array(positive).default([]),
  /** cosine, cosine-restarts: the floor as a fraction of the peak lr. */
  minMult: fraction.default(0),
  /** cosine-restarts: first period in epochs, then each period is tMult times longer. */
  t0Epochs: positive.default(1),
  tMult: z.number().min(1).default(2),
  /** cyclical: mode, half-cycle length in epochs, and the bottom of the cycle as a fraction of the peak. */
  cyclicMode: namedEnum('cyclical mode', CYCLIC_MODES).default('triangular'),
  halfCycleEpochs: positive.default(1),
  baseMult: fraction.default(0.1),
  /** one-cycle: rising fraction, start = peak / divFactor, end = start / finalDivFactor. */
  pctStart: fraction.default(0.25),
  divFactor: z.number().min(1).default(25),
  finalDivFactor: z.number().min(1).default(1e4),
  /** Linear warm-up in front of the schedule (per phase when scope = 'phase'). */
  warmupEpochs: z.number().min(0).default(0),
  warmupStartMult: fraction.default(0),
});
export type ScheduleConfig = z.output<typeof scheduleSchema>;

export const plateauSchema = z.object({
  enabled: z.boolean().default(false),
  monitor: namedEnum('monitor', MONITORS).default('val_loss'),
  factor: z.number().gt(0).lt(1).default(0.1),
  patience: z.number().int().min(0).default(2),
  minDelta: z.number().min(0).default(0),
  cooldown: z.number().int().min(0).default(0),
  /** Never scale below this fraction of the scheduled lr. */
  minMult: z.number().min(0).default(1e-3),
});

export const optimizerSchema = z.object({
  name: namedEnum('optimizer', OPTIMIZER_NAMES).default('adamw'),
  /** Peak learning rate of the head; backbone groups derive theirs from it (see lrs, unfreeze). */
  lr: positive.default(1e-3),
  momentum: z.number().min(0).max(0.9999).default(0.9),
  nesterov: z.boolean().default(false),
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.999),
  eps: positive.default(1e-8),
  /** L2 penalty for sgd/adam, decoupled decay for adamw (PyTorch semantics: p -= lr * wd * p). */
  weightDecay: z.number().min(0).default(0),
  /** Keep biases and BatchNorm gamma/beta out of weight decay. */
  excludeBiasAndNorm: z.boolean().default(true),
});

export const trainableSchema = z.object({
  /** head: backbone frozen; last: the last `last` groups; named: `groups`; all: full fine-tuning. */
  mode: namedEnum('trainable mode', ['head', 'last', 'named', 'all'] as const).default('head'),
  last: z.number().int().min(0).default(0),
  groups: z.array(z.string()).default([]),
});

export const lrsSchema = z.object({
  /**
   * uniform: every backbone group at the head lr; explicit: `perGroup` by group name;
   * slice: geometric from `lo` (first group) to the head lr (fastai slice(lo, hi));
   * layerwise: head lr x decay^k for the k-th group counted from the head down.
   */
  mode: namedEnum('lr mode', ['uniform', 'explicit', 'slice', 'layerwise'] as const).default('uniform'),
  perGroup: z.record(z.string(), positive).default({}),
  lo: positive.optional(),
  decay: z.number().gt(0).max(1).default(0.9),
});

export const unfreezeStageSchema = z.object({
  /** Unfreeze once this many epochs have completed. */
  afterEpoch: z.number().int().min(0),
  /** How many more groups to unfreeze, walking from the head towards the input. */
  groups: z.number().int().min(1),
  /** The unfrozen groups' lr = their lr from `lrs` (the head lr when uniform) x lrMult. */
  lrMult: positive.default(1),
});
export type UnfreezeStage = z.output<typeof unfreezeStageSchema>;

export const headSchema = z.object({
  kind: namedEnum('head', ['linear', 'concat-pool'] as const).default('linear'),
  /** concat-pool: hidden Dense units. */
  hidden: z.number().int().min(1).default(512),
  /** Dropout before the final Dense (linear head) or before the hidden Dense (concat-pool). */
  dropout: fraction.default(0),
  /** concat-pool: dropout before the final Dense. */
  dropoutFinal: fraction.default(0.5),
});
export type HeadConfig = z.output<typeof headSchema>;

export const trainConfigSchema = z.object({
  strategy: namedEnum('strategy', STRATEGIES).default('head'),
  epochs: z.number().int().min(1).default(5),
  batchSize: z.number().int().min(1).default(32),
  /** Images per forward/backward pass; gradients accumulate up to batchSize. 0 = chosen from the model and memory. */
  microBatch: z.number().int().min(0).default(0),
  seed: z.number().int().min(0).default(0),
  augment: z.boolean().default(true),
  /** Evaluation-time augmentation: 'flip' averages the predictions of the image and its mirror. */
  tta: namedEnum('tta', ['none', 'flip'] as const).default('none'),
  /** Train BatchNorm statistics in trainable groups (default: inference mode, Keras' fine-tuning advice). */
  trainBatchNormStats: z.boolean().default(false),
  optimizer: optimizerSchema.default(optimizerSchema.parse({})),
  schedule: scheduleSchema.default(scheduleSchema.parse({})),
  plateau: plateauSchema.default(plateauSchema.parse({})),
  trainable: trainableSchema.default(trainableSchema.parse({})),
  lrs: lrsSchema.default(lrsSchema.parse({})),
  unfreeze: z
    .object({
      stages: z.array(unfreezeStageSchema).default([]),
      /** Fresh optimizer state for every group when a stage unfreezes (PyTorch tutorials do this). */
      resetOptimizer: z.boolean().default(false),
      /** Newly unfrozen groups ramp their lr up linearly over this many epochs (no shock to pretrained weights). */
      warmupEpochs: z.number().min(0).default(0),
    })
    .default({ stages: [], resetOptimizer: false, warmupEpochs: 0 }),
  head: headSchema.default(headSchema.parse({})),
  loss: z
    .object({
      labelSmoothing: z.number().min(0).lt(1).default(0),
      /** 'balanced': n / (classes x count) per class, like sklearn; or one weight per class. */
      classWeights: z.union([z.literal('none'), z.literal('balanced'), z.array(z.number().min(0))]).default('none'),
    })
    .default({ labelSmoothing: 0, classWeights: 'none' }),
  earlyStopping: z
    .object({
      enabled: z.boolean().default(false),
      monitor: namedEnum('monitor', MONITORS).default('val_loss'),
      mode: namedEnum('mode', ['auto', 'min', 'max'] as const).default('auto'),
      patience: z.number().int().min(0).default(3),
      minDelta: z.number().min(0).default(0),
      restoreBest: z.boolean().default(true),
    })
    .default({ enabled: false, monitor: 'val_loss', mode: 'auto', patience: 3, minDelta: 0, restoreBest: true }),
  /** Which epoch counts as best (for the best checkpoint and the run summary); ties go to the lower val_loss. */
  bestMonitor: namedEnum('monitor', MONITORS).default('val_accuracy'),
  featureCache: z
    .object({
      /** auto: on whenever a frozen prefix stays frozen for the whole plan. */
      enabled: z.union([z.literal('auto'), z.boolean()]).default('auto'),
      /**
       * Augmented views precomputed per training image when augment is on; one is sampled per
       * epoch. 3 (each view seen twice in a 6-epoch plan): on hymenoptera's progressive recipe,
       * seeds 0/1/2, best val acc 0.935/0.908/0.928 with 3 views vs 0.941/0.895/0.915 with 4,
       * and ~2.5 s less caching (bench notes in issue 9).
       */
      views: z.number().int().min(1).default(3),
      /** Above this the features go to disk (the cache dir) instead of memory. */
      memoryMB: z.number().min(0).default(512),
    })
    .default({ enabled: 'auto', views: 3, memoryMB: 512 }),
});

export type TrainConfig = z.output<typeof trainConfigSchema>;
/** What callers may pass: any subset, nested objects partial too. */
export type TrainConfigInput = DeepPartial<z.input<typeof trainConfigSchema>>;
export type DeepPartial<T> = T extends readonly (infer U)[] ? U[] : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

/** The defaults of every field (strategy 'head'). */
export function defaultConfig(): TrainConfig {
  return trainConfigSchema.parse({});
}

/**
 * Validate a (partial) config and fill in defaults. Throws AppError('invalid-config') whose
 * message names each bad field, what it got and what it accepts.
 */
export function parseConfig(input: unknown): TrainConfig {
  const r = trainConfigSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => {
    const where = i.path.length ? i.path.join('.') : 'config';
    return `${where}: ${i.message}`;
  });
  throw new AppError('invalid-config', `Invalid training config. ${lines.join('; ')}`);
}

/** "min" or "max" for a monitor when the mode is 'auto' (accuracies go up, losses down). */
export function monitorMode(monitor: Monitor, mode: 'auto' | 'min' | 'max' = 'auto'): 'min' | 'max' {
  if (mode !== 'auto') return mode;
  return monitor.endsWith('accuracy') ? 'max' : 'min';
}
