/** The `training` verbs and events. (Owned by the training slice; filled in by its issue.) */
import { z } from 'zod';
import { verb } from './define';

void z;
void verb;

export const trainingVerbs = {};

export interface TrainingEvents {}
