import { InitialSchema1795633463586 } from './1795633463586-InitialSchema.js';
import { MessageTriggers1795633463587 } from './1795633463587-MessageTriggers.js';
import { NotifyOnWake1795633463588 } from './1795633463588-NotifyOnWake.js';

/** Every migration, in order. A new one (npm run migration:generate --name=X) is added here. */
export const MIGRATIONS = [
  InitialSchema1795633463586,
  MessageTriggers1795633463587,
  NotifyOnWake1795633463588,
];
