// Between painted slices: "interpolate" fills the slices between slice a and slice b from the
// objects painted on both, per class, by blending their signed distance maps (an object on a
// that moved or grew by b passes smoothly through the slices between); "copy from previous"
// copies the labels of the slice before into this one. Neither ever overwrites a painted
// pixel: only unpainted pixels (255) receive labels.
import { UNPAINTED, fetchSlice, sliceUrl, upload } from "./annotation_slices.js";

const FAR = 1e20;

// Squared distance to the nearest zero of f along one line (lower envelope of parabolas).
function distanceLine(f, n, d, v, z) {
  let k = 0;
  v[0] = 0; z[0] = -Infinity; z[1] = Infinity;
  for (let q = 1; q < n; q++) {
    let s = ((f[q] + q * q) - (f[v[k]] + v[k] * v[k])) / (2 * q - 2 * v[k]);
    while (s <= z[k]) { k--; s = ((f[q] + q * q) - (f[v[k]] + v[k] * v[k])) / (2 * q - 2 * v[k]); }
    k++; v[k] = q; z[k] = s; z[k + 1] = Infinity;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    while (z[k + 1] < q) k++;
    d[q] = (q - v[k]) * (q - v[k]) + f[v[k]];
  }
}

// Exact Euclidean distance of every pixel to the nearest pixel where `inside(i)` holds.
function distanceTo(inside, height, width) {
  const out = new Float64Array(height * width);
  const n = Math.max(height, width);
  const f = new Float64Array(n), d = new Float64Array(n), v = new Int32Array(n), z = new Float64Array(n + 1);
  for (let c = 0; c < width; c++) {
    for (let r = 0; r < height; r++) f[r] = inside(r * width + c) ? 0 : FAR;
    distanceLine(f, height, d, v, z);
    for (let r = 0; r < height; r++) out[r * width + c] = d[r];
  }
  for (let r = 0; r < height; r++) {
    for (let c = 0; c < width; c++) f[c] = out[r * width + c];
    distanceLine(f, width, d, v, z);
    for (let c = 0; c < width; c++) out[r * width + c] = Math.sqrt(d[c]);
  }
  return out;
}

// Negative inside the class, positive outside; an absent class is far away everywhere.
export function signedDistance(labels, classId, height, width) {
  let any = false;
  for (let i = 0; i < labels.length; i++) if (labels[i] === classId) { any = true; break; }
  if (!any) return null;
  const toInside = distanceTo((i) => labels[i] === classId, height, width);
  const toOutside = distanceTo((i) => labels[i] !== classId, height, width);
  const sd = new Float64Array(labels.length);
  for (let i = 0; i < sd.length; i++) sd[i] = toInside[i] > 0 ? toInside[i] : -toOutside[i];
  return sd;
}

// Class ids (not background 0, not unpainted) painted in `labels`.
function classesIn(labels) {
  const seen = new Set();
  for (const value of labels) if (value !== UNPAINTED && value !== 0) seen.add(value);
  return seen;
}

// The labels of slice z at fraction t between `a` (t = 0) and `b` (t = 1).
export function interpolatedSlice(a, b, t, height, width) {
  const result = new Uint8Array(a.length).fill(UNPAINTED);
  const best = new Float64Array(a.length).fill(Infinity);
  const far = Math.hypot(height, width);
  for (const classId of new Set([...classesIn(a), ...classesIn(b)])) {
    const sa = signedDistance(a, classId, height, width), sb = signedDistance(b, classId, height, width);
    for (let i = 0; i < result.length; i++) {
      const value = (1 - t) * (sa ? sa[i] : far) + t * (sb ? sb[i] : far);
      if (value < 0 && value < best[i]) { best[i] = value; result[i] = classId; }
    }
  }
  return result;
}

// Fill the slices strictly between za and zb; returns how many pixels were labelled.
export async function interpolateBetween({ dataset, annotation, za, zb, height, width, onSlice }) {
  if (zb < za) [za, zb] = [zb, za];
  if (zb - za < 2) throw new Error("interpolation needs two painted slices with slices between them");
  const [a, b] = await Promise.all([fetchSlice(dataset, annotation, za), fetchSlice(dataset, annotation, zb)]);
  if (classesIn(a).size === 0 || classesIn(b).size === 0) {
    throw new Error(`paint the object on both slice ${za} and slice ${zb} first`);
  }
  let labelled = 0;
  for (let z = za + 1; z < zb; z++) {
    const between = interpolatedSlice(a, b, (z - za) / (zb - za), height, width);
    const current = await fetchSlice(dataset, annotation, z);
    for (let i = 0; i < current.length; i++) {
      if (current[i] === UNPAINTED && between[i] !== UNPAINTED) { current[i] = between[i]; labelled++; }
    }
    await upload(sliceUrl(dataset, annotation, z), current);
    if (onSlice) onSlice(z);
  }
  return labelled;
}
