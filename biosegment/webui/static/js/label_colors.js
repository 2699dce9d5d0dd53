// Colour label tiles in the page: tiles carry class ids as grey levels; a 256-entry RGBA palette
// turns them into colours, so changing a class colour or hiding a class needs no new request.
export function makePalette(classes, { hidden = new Set(), showBackground = false } = {}) {
  const palette = new Uint8ClampedArray(256 * 4); // everything transparent by default
  for (const c of classes) {
    if (hidden.has(c.id) || (c.id === 0 && !showBackground)) continue;
    const hex = (c.color || "#ff0000").replace("#", "");
    palette.set([parseInt(hex.slice(0, 2), 16), parseInt(hex.slice(2, 4), 16),
      parseInt(hex.slice(4, 6), 16), 255], c.id * 4);
  }
  return palette;
}

// A canvas with `image` (grey class ids) coloured through `palette`.
export function colourise(image, palette) {
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth || image.width;
  canvas.height = image.naturalHeight || image.height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(image, 0, 0);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const data = pixels.data;
  for (let i = 0; i < data.length; i += 4) {
    const base = data[i] * 4;
    data[i] = palette[base]; data[i + 1] = palette[base + 1];
    data[i + 2] = palette[base + 2]; data[i + 3] = palette[base + 3];
  }
  ctx.putImageData(pixels, 0, 0);
  return canvas;
}
