import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';
import { PaginationDto } from '../../common/pagination.dto.js';
import { DELIVERY_STATUSES } from '../../database/entities/delivery.entity.js';
import type { DeliveryStatus } from '../../database/entities/delivery.entity.js';

export class ListDeliveriesDto extends PaginationDto {
  @ApiPropertyOptional({ enum: DELIVERY_STATUSES })
  @IsOptional()
  @IsIn(DELIVERY_STATUSES)
  status?: DeliveryStatus;
}
