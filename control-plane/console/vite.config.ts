// Vite build of the Weir console. `npm run dev` proxies the API to a running `weir dev`
// (WEIR_API, default http://127.0.0.1:7070).
/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  plugins: [react()],
  build: { outDir: 'dist', sourcemap: false, chunkSizeWarningLimit: 1500 },
  server: {
    fs: { allow: ['..', '../../pipelines'] },
    proxy: { '/api': process.env.WEIR_API ?? 'http://127.0.0.1:7070' },
  },
  // codemirror-json-schema's ESM build imports without file extensions: let Vite resolve it.
  test: { environment: 'jsdom', include: ['src/**/*.test.{ts,tsx}'], server: { deps: { inline: ['codemirror-json-schema'] } } },
});
