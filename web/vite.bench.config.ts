import { defineConfig } from "vite";

/** The timing page (bench/), built apart from the participant's page and never served with it. */
export default defineConfig({
  root: "bench",
  base: "./",
  build: { outDir: "../.run/bench-dist", emptyOutDir: true, target: "es2022" },
  worker: { format: "es" },
});
