export * from './errors.js';
export * from './digest.js';
export * from './canonical-json.js';
export * from './size.js';
export * from './atomic-file.js';
export * from './events.js';
export * from './http-server.js';
