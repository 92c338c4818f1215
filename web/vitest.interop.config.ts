import { defineConfig } from "vitest/config";

/** The interop tests need the Rust example binary (INTEROP_BIN): run by `scripts/web test interop`. */
export default defineConfig({
  test: {
    include: ["test/**/*.interop.ts"],
    testTimeout: 300_000,
  },
});
