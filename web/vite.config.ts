import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The SDK is compiled from its sources (client-sdk/js/src), so the web
// client never depends on a separately built copy of it.
const sdk = fileURLToPath(new URL("../client-sdk/js/src/index.ts", import.meta.url));
// `vite dev` talks to a confabd on its default HTTP port.
const confabd = process.env["CONFABD_HTTP"] ?? "127.0.0.1:7480";

export default defineConfig({
  resolve: { alias: { "@confab/sdk": sdk } },
  esbuild: { jsx: "automatic", jsxImportSource: "preact", legalComments: "none" },
  build: {
    // Deterministic output: the committed web/dist must equal a rebuild
    // (scripts/check-web), so no source maps with absolute paths and no
    // inline polyfill script (the CSP allows scripts from files only).
    outDir: process.env["CONFAB_WEB_OUT"] ?? "dist",
    emptyOutDir: true,
    sourcemap: false,
    modulePreload: { polyfill: false },
    target: "es2022",
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
  server: {
    proxy: {
      "/ws": { target: `ws://${confabd}`, ws: true },
      "/api": `http://${confabd}`,
    },
  },
});
