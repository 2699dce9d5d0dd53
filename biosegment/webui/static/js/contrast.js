// Contrast of the image layer: a histogram of the current slice's grey levels, a display
// window (low, high) that maps low to black and high to white, and "auto" that puts the window
// at the 1st and 99th percentiles of the slice. The window is applied when tiles are drawn,
// through a lookup table like the label layers' colours, so no tile is fetched again.

export const AUTO_PERCENTILES = [0.01, 0.99];

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`could not read ${url}`));
    image.src = url;
  });
}

// 256-bin histogram of the slice the view shows, from its coarsest tiles (the whole slice).
export async function viewHistogram(view, rawLayer) {
  const level = view.pyramid.length - 1;
  const info = view.pyramid[level];
  const counts = new Float64Array(256);
  for (let row = 0; row < info.rows; row++) {
    for (let col = 0; col < info.cols; col++) {
      const image = await loadImage(view.tileUrl(rawLayer, level, row, col));
      const canvas = document.createElement("canvas");
      canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(image, 0, 0);
      const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 0; i < data.length; i += 4) counts[data[i]]++;
    }
  }
  return counts;
}

// The grey level below which a fraction `p` of the pixels lie.
export function percentile(counts, p) {
  const total = counts.reduce((a, b) => a + b, 0);
  let seen = 0;
  for (let level = 0; level < 256; level++) {
    seen += counts[level];
    if (seen >= p * total) return level;
  }
  return 255;
}

export function drawHistogram(canvas, counts, low, high) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const peak = Math.max(1, ...counts.map((c) => Math.log1p(c)));
  ctx.fillStyle = "#8a93a6";
  for (let level = 0; level < 256; level++) {
    const bar = (Math.log1p(counts[level]) / peak) * h;
    ctx.fillRect((level / 256) * w, h - bar, Math.max(1, w / 256), bar);
  }
  ctx.fillStyle = "rgba(90, 160, 255, 0.25)";
  ctx.fillRect((low / 256) * w, 0, ((high - low + 1) / 256) * w, h);
}

// A lookup table for the image tiles (as the label layers' palettes, colours.js): grey level g shown as
// (g - low) / (high - low), clamped; null for the full range (tiles drawn as they are).
export function windowPalette(low, high) {
  if (low <= 0 && high >= 255) return null;
  const width = Math.max(1, high - low);
  const palette = new Uint8ClampedArray(256 * 4);
  for (let g = 0; g < 256; g++) {
    const v = Math.round(((g - low) * 255) / width);
    palette.set([v, v, v, 255], g * 4);
  }
  return palette;
}
