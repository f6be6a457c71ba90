/** The `datasets` verbs and events. (Owned by the datasets slice; filled in by its issue.) */
import { z } from 'zod';
import { verb } from './define';

void z;
void verb;

export const datasetsVerbs = {};

export interface DatasetsEvents {}
