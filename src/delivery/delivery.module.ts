import { Module } from '@nestjs/common';

/** The delivery engine: claims due lines and POSTs their heads. */
@Module({})
export class DeliveryModule {}
