/** The experiment log: open it once at boot and pass the Store to the services. */
export { openStore, Store, SCHEMA_VERSION } from './store';
export type { MetricRow, CreateRunInput, ResumeOptions } from './store';
export type { OpenOptions } from './open';
export { metricDirection, flattenConfig } from './values';
