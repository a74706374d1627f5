export * from "./codes.js";
export * from "./errors.js";
export * from "./wire.js";
export * from "./schema.js";
export * from "./frames.js";
export * from "./codec.js";
