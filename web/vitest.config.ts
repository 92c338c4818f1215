import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Big-number tests share two cores with builds: give them room.
    testTimeout: 300_000,
  },
});
