/**
 * The contract's enumerations as plain arrays. The contract modules build zod schemas when
 * imported, which would pull zod into the renderer bundle; these copies are checked against
 * the contract's types at compile time (a missing or extra value fails typecheck).
 */
import type { StrategyName } from '../../../shared/contract/training';
import type { RunStatus } from '../../../shared/contract/runs';

type Exact<All, Listed> = [Exclude<All, Listed>] extends [never] ? ([Exclude<Listed, All>] extends [never] ? true : false) : false;
const exact = <T extends true>(_: T) => _;

export const STRATEGY_NAMES = ['head', 'progressive', 'discriminative', 'full', 'auto'] as const;
exact<Exact<StrategyName, (typeof STRATEGY_NAMES)[number]>>(true);

export const RUN_STATUSES = ['queued', 'running', 'finished', 'failed', 'stopped', 'interrupted'] as const;
exact<Exact<RunStatus, (typeof RUN_STATUSES)[number]>>(true);
