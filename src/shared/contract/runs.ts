/** The `runs` verbs and events. (Owned by the runs slice; filled in by its issue.) */
import { z } from 'zod';
import { verb } from './define';

void z;
void verb;

export const runsVerbs = {};

export interface RunsEvents {}
