// SHA-256 of a File, as a stream, off the page's thread: hash-wasm (WebAssembly) hashes chunk by
// chunk, so a 700 MB scan never sits in memory whole and the page never freezes.
/* global hashwasm */
importScripts('../vendor/hash-wasm-sha256.umd.min.js');

const CHUNK = 4 * 1024 * 1024;

self.onmessage = async (event) => {
  const { id, file } = event.data;
  try {
    const hasher = await hashwasm.createSHA256();
    hasher.init();
    const reader = file.stream().getReader();
    let done = 0;
    let last = 0;
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) break;
      // Large reads are hashed in CHUNK slices so progress moves smoothly.
      for (let off = 0; off < value.length; off += CHUNK) {
        hasher.update(value.subarray(off, Math.min(off + CHUNK, value.length)));
      }
      done += value.length;
      const now = Date.now();
      if (now - last > 100) {
        last = now;
        self.postMessage({ id, progress: done });
      }
    }
    self.postMessage({ id, progress: done, sha256: hasher.digest('hex') });
  } catch (e) {
    self.postMessage({ id, error: String(e && e.message ? e.message : e) });
  }
};
