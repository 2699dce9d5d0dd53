// Flood fill that follows the image: from the clicked pixel, the 4-connected pixels that have
// the clicked pixel's label (so a painted outline stops it) and, in "image" mode, a grey level
// within `tolerance` of the clicked one. It never leaves `bounds`, the part of the slice the
// person can see, so one click cannot label what is off screen.
import { API, enc } from "./common.js";

const TILE = 512;

// Indices (row * width + col) of the region; `grey` is a Uint8Array over `bounds` or null.
export function fillRegion({ labels, width, seed, bounds, grey = null, tolerance = 0 }) {
  const [r0, c0, r1, c1] = bounds;
  const [sr, sc] = seed;
  if (sr < r0 || sc < c0 || sr > r1 || sc > c1) return [];
  const boxWidth = c1 - c0 + 1;
  const target = labels[sr * width + sc];
  const greyAt = (r, c) => grey[(r - r0) * boxWidth + (c - c0)];
  const seedGrey = grey ? greyAt(sr, sc) : 0;
  const seen = new Uint8Array((r1 - r0 + 1) * boxWidth);
  const inside = (r, c) => {
    if (r < r0 || c < c0 || r > r1 || c > c1) return false;
    const k = (r - r0) * boxWidth + (c - c0);
    if (seen[k]) return false;
    if (labels[r * width + c] !== target) return false;
    if (grey && Math.abs(greyAt(r, c) - seedGrey) > tolerance) return false;
    return true;
  };
  const region = [];
  const stack = [[sr, sc]];
  while (stack.length) {
    const [r, c] = stack.pop();
    if (!inside(r, c)) continue;
    seen[(r - r0) * boxWidth + (c - c0)] = 1;
    region.push(r * width + c);
    stack.push([r + 1, c], [r - 1, c], [r, c + 1], [r, c - 1]);
  }
  return region;
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`could not read the image tile ${url}`));
    image.src = url;
  });
}

// Grey levels of slice `z` over `bounds` (full resolution), read from the image's tiles.
export async function sliceGrey({ dataset, z, bounds, version = "" }) {
  const [r0, c0, r1, c1] = bounds;
  const height = r1 - r0 + 1, width = c1 - c0 + 1;
  const canvas = document.createElement("canvas");
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const jobs = [];
  for (let row = Math.floor(r0 / TILE); row <= Math.floor(r1 / TILE); row++) {
    for (let col = Math.floor(c0 / TILE); col <= Math.floor(c1 / TILE); col++) {
      const url = `${API}/datasets/${enc(dataset)}/tiles/raw/z/${z}/0/${row}/${col}.png` +
        `?v=${enc(version)}`;
      jobs.push(loadImage(url).then((image) => ctx.drawImage(image, col * TILE - c0, row * TILE - r0)));
    }
  }
  await Promise.all(jobs);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const grey = new Uint8Array(width * height);
  for (let i = 0; i < grey.length; i++) grey[i] = rgba[i * 4];
  return grey;
}
