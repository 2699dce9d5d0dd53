// Class colours in the page. Tiles carry class ids as grey levels; a 256-entry RGBA palette turns
// them into colours, so changing a class colour or hiding a class needs no new request. Colours
// belong to a layer: changing the membrane colour of a segmentation repaints that segmentation
// only. By default ground truth and annotations keep the project's class colours and a
// segmentation (a prediction) takes the complementary hue of each, so the two are told apart at
// a glance when both are shown. (`color` is the field name the API and setup.json use.)

function hexToRgb(hex) {
  const h = (hex || "#ff0000").replace("#", "");
  return [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16));
}

function rgbToHex(rgb) {
  return "#" + rgb.map((v) => Math.max(0, Math.min(255, Math.round(v))).toString(16).padStart(2, "0")).join("");
}

// The complementary colour: the same lightness, the opposite hue.
export function complementary(hex) {
  const [r, g, b] = hexToRgb(hex);
  const top = Math.max(r, g, b), bottom = Math.min(r, g, b);
  return rgbToHex([top + bottom - r, top + bottom - g, top + bottom - b]);
}

// A difference layer (a segmentation against ground truth) has its own three "classes".
export const DIFFERENCE_CLASSES = [
  { id: 1, name: "false positive", color: "#ff40ff" },
  { id: 2, name: "false negative", color: "#ffd000" },
  { id: 3, name: "other class", color: "#40a0ff" },
];

// The classes a layer shows: the dataset's, or the difference layer's own.
export function layerClasses(layer, classes) {
  return layer.kind === "difference" ? DIFFERENCE_CLASSES : classes;
}

// A new Map class id -> "#rrggbb" with the default colours of `layer` (kind, name).
export function defaultColours(layer, classes) {
  const colours = new Map();
  for (const c of layerClasses(layer, classes)) {
    colours.set(c.id, layer.kind === "segmentation" ? complementary(c.color) : (c.color || "#ff0000"));
  }
  return colours;
}

// The classes with the colours of `layer`, for makePalette.
export function classesIn(layer, classes) {
  return layerClasses(layer, classes).map((c) => ({ ...c, color: (layer.colours && layer.colours.get(c.id)) || c.color }));
}

// The palette of `classes` ({id, color}): hidden classes and background (unless shown) stay clear.
export function makePalette(classes, { hidden = new Set(), showBackground = false } = {}) {
  const palette = new Uint8ClampedArray(256 * 4); // everything transparent by default
  for (const c of classes) {
    if (hidden.has(c.id) || (c.id === 0 && !showBackground)) continue;
    palette.set([...hexToRgb(c.color), 255], c.id * 4);
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
