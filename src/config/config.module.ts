import { DynamicModule, Global, Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { AppConfig, loadConfig } from './app-config.js';

const APP_CONFIG_KEY = 'app';

/**
 * Reads the environment (and `.env` when present) through @nestjs/config, validates it with
 * loadConfig and provides the typed AppConfig. Tests pass their own variables in `env`.
 */
@Global()
@Module({})
export class AppConfigModule {
  static forRoot(env?: Record<string, string | undefined>): DynamicModule {
    return {
      module: AppConfigModule,
      imports: [
        ConfigModule.forRoot({
          ignoreEnvFile: env !== undefined,
          ignoreEnvVars: env !== undefined,
          validate: (vars) => ({ [APP_CONFIG_KEY]: loadConfig(env ?? vars) }),
        }),
      ],
      providers: [
        {
          provide: AppConfig,
          inject: [ConfigService],
          useFactory: (config: ConfigService) => config.getOrThrow<AppConfig>(APP_CONFIG_KEY),
        },
      ],
      exports: [AppConfig],
    };
  }
}
