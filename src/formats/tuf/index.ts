/** TUF 1.0 metadata: keys, models, signing, builders and the client workflow (pure). */
export * from './keys.js';
export * from './metadata.js';
export * from './sign.js';
export * from './build.js';
export * from './client.js';
