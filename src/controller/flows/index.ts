/** The flow of each migration class. */
import type { MigrationClass } from '../types';
import type { Flow } from './flow';
import { maintenanceFlow, MaintenanceStep } from './maintenance';
import { riskyFlow, RiskyStep } from './risky';
import { safeFlow, SafeStep } from './safe';

/** Any flow's step name (fault hooks are keyed by it). */
export type StepName = SafeStep | MaintenanceStep | RiskyStep;

const FLOWS: { [C in MigrationClass]: Flow<StepName> } = {
  safe: safeFlow as Flow<StepName>,
  maintenance: maintenanceFlow as Flow<StepName>,
  risky: riskyFlow as Flow<StepName>,
};

export const flowOf = (c: MigrationClass): Flow<StepName> => FLOWS[c];
