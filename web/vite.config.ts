import { defineConfig } from "vite";

export default defineConfig({
  // Relative asset paths: the page works under any path prefix nginx serves it at.
  base: "./",
  build: { target: "es2022", sourcemap: true },
  worker: { format: "es" },
});
