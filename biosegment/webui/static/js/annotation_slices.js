// An annotation's slices over the API, in the sparse per-slice format: one byte per pixel, the
// class id, or 255 where nothing is painted. Reading a slice, and writing one (gzip-compressed
// when it is large).
import { API, ApiFailure, enc } from "./common.js";

export const UNPAINTED = 255;

export function sliceUrl(dataset, annotation, z) {
  return `${API}/datasets/${enc(dataset)}/annotations/${enc(annotation)}/slices/${z}`;
}

export async function fetchSlice(dataset, annotation, z) {
  const response = await fetch(sliceUrl(dataset, annotation, z), { cache: "no-store" });
  if (!response.ok) throw new ApiFailure(response.status, await response.json().catch(() => null));
  return new Uint8Array(await response.arrayBuffer());
}

export async function upload(url, labels) {
  let body = labels, headers = { "Content-Type": "application/octet-stream" };
  if (typeof CompressionStream === "function" && labels.length > 1 << 20) {
    // large slices travel gzip-compressed: mostly 255 with a few strokes compresses ~100x
    const stream = new Blob([labels]).stream().pipeThrough(new CompressionStream("gzip"));
    body = await new Response(stream).arrayBuffer();
    headers["Content-Encoding"] = "gzip";
  }
  const response = await fetch(url, { method: "PUT", headers, body });
  if (!response.ok) throw new ApiFailure(response.status, await response.json().catch(() => null));
}
