import { BadRequestException, Injectable, PipeTransform } from '@nestjs/common';

/** A path id: a positive integer in decimal, nothing else ("1e3", "01x" and "-1" are 400s). */
@Injectable()
export class ParseIdPipe implements PipeTransform<string, number> {
  transform(value: string): number {
    if (!/^[0-9]{1,15}$/.test(value) || Number(value) < 1) {
      throw new BadRequestException(`id must be a positive integer (got "${value.slice(0, 40)}")`);
    }
    return Number(value);
  }
}
