import { InitialSchema1795633463586 } from './1795633463586-InitialSchema.js';
import { MessageTriggers1795633463587 } from './1795633463587-MessageTriggers.js';
import { SequenceRuns1795633463589 } from './1795633463589-SequenceRuns.js';
import { NotifyOnWake1795633463590 } from './1795633463590-NotifyOnWake.js';
import { TriggerIntegrity1795633463600 } from './1795633463600-TriggerIntegrity.js';
import { WebhookDeletion1795633463601 } from './1795633463601-WebhookDeletion.js';
import { QueueGauges1795633463800 } from './1795633463800-QueueGauges.js';
import { WebhookOperations1795633463850 } from './1795633463850-WebhookOperations.js';
import { Retention1795633463900 } from './1795633463900-Retention.js';
import { DeliveryFunctions1795633463950 } from './1795633463950-DeliveryFunctions.js';
import { GroupRecord1795633464000 } from './1795633464000-GroupRecord.js';
import { LeanerPublish1795633464100 } from './1795633464100-LeanerPublish.js';
import { LockThenRead1795633464200 } from './1795633464200-LockThenRead.js';
import { BoundedPayloads1795633464300 } from './1795633464300-BoundedPayloads.js';
import { SequencePlans1795633464301 } from './1795633464301-SequencePlans.js';
import { BoundedRecord1795633464302 } from './1795633464302-BoundedRecord.js';
import { FindingAndAudit1795633464500 } from './1795633464500-FindingAndAudit.js';
import { PublishByName1795633464600 } from './1795633464600-PublishByName.js';
import { EventRouting1795633464700 } from './1795633464700-EventRouting.js';
import { WebhookManners1795633464750 } from './1795633464750-WebhookManners.js';
import { SetBasedRecord1795633464800 } from './1795633464800-SetBasedRecord.js';
import { HotRecords1795633464900 } from './1795633464900-HotRecords.js';
import { CheaperPublish1795633465000 } from './1795633465000-CheaperPublish.js';
import { PrintableHeads1795633465100 } from './1795633465100-PrintableHeads.js';
import { LoneRecord1795633465200 } from './1795633465200-LoneRecord.js';
import { ClaimPlannedOnce1795633465300 } from './1795633465300-ClaimPlannedOnce.js';
import { SuccessOnDelivery1795633465400 } from './1795633465400-SuccessOnDelivery.js';

/** Every migration, in order. npm run migration:generate -- Name adds a new one here. */
export const MIGRATIONS = [
  InitialSchema1795633463586,
  MessageTriggers1795633463587,
  SequenceRuns1795633463589,
  NotifyOnWake1795633463590,
  TriggerIntegrity1795633463600,
  WebhookDeletion1795633463601,
  QueueGauges1795633463800,
  WebhookOperations1795633463850,
  Retention1795633463900,
  DeliveryFunctions1795633463950,
  GroupRecord1795633464000,
  LeanerPublish1795633464100,
  LockThenRead1795633464200,
  BoundedPayloads1795633464300,
  SequencePlans1795633464301,
  BoundedRecord1795633464302,
  FindingAndAudit1795633464500,
  PublishByName1795633464600,
  EventRouting1795633464700,
  WebhookManners1795633464750,
  SetBasedRecord1795633464800,
  HotRecords1795633464900,
  CheaperPublish1795633465000,
  PrintableHeads1795633465100,
  LoneRecord1795633465200,
  ClaimPlannedOnce1795633465300,
  SuccessOnDelivery1795633465400,
];
