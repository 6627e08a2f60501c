import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiResponse } from '@nestjs/swagger';

export class ErrorDto {
  @ApiProperty({ example: 404 })
  status_code: number;

  @ApiProperty({ example: 'Not Found' })
  error: string;

  @ApiProperty({ example: 'topic 7 does not exist' })
  message: string;
}

const DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid input',
  401: 'Missing or wrong API key',
  404: 'Not found',
  409: 'Conflict',
  413: 'Request body or payload too large',
  415: 'Request body is not JSON',
  422: 'Unprocessable',
  503: 'Unavailable',
};

/** Documents error responses with the shared error body. */
export function ApiErrors(...statuses: number[]) {
  return applyDecorators(
    ...statuses.map((status) =>
      ApiResponse({ status, description: DESCRIPTIONS[status] ?? 'Error', type: ErrorDto }),
    ),
  );
}
