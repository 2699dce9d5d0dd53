// The viewer's layers: the image, ground truth, segmentations, differences, annotations and the
// live layer of a running fine-tune. A layer is a plain object {kind, name, label, visible,
// opacity, colours, hiddenClasses, version, palette, paletteKey, ...}; it is never changed in
// place: addLayer, updateLayer and removeLayer put a new list into the store, and a changed
// colour or hidden class comes with a new palette (and a new paletteKey, which tells the views
// to colour their tiles again).
import { classesIn, defaultColours, makePalette } from "./colours.js";

let paletteCount = 0;

export function layerKey(layer) { return layer.name ? `${layer.kind}:${layer.name}` : layer.kind; }

export function paletteFor(layer, classes) {
  const hidden = layer.hiddenClasses || new Set();
  return makePalette(classesIn(layer, classes), { hidden, showBackground: layer.kind === "annotation" });
}

// `layer` with the palette its colours give (the image's palette is its display window instead).
export function painted(layer, classes) {
  if (layer.kind === "raw") return layer;
  return { ...layer, palette: paletteFor(layer, classes), paletteKey: ++paletteCount };
}

function versionOf(layer, fingerprint) {
  return layer.kind === "raw" ? (fingerprint || "") : (layer.version || layer.state || "");
}

// A layer of the catalog's dataset document, as the viewer shows it.
export function newLayer(l, visible, { classes, fingerprint }) {
  return painted({ ...l, visible, opacity: l.kind === "raw" ? 1 : 0.5, hiddenClasses: new Set(),
    version: versionOf(l, fingerprint), colours: defaultColours(l, classes) }, classes);
}

// The annotation being edited (or the colours an annotation would have).
export function editingLayer(state) {
  return state.layers.find((l) => l.kind === "annotation" && l.name === state.editing)
    || { kind: "annotation", colours: defaultColours({ kind: "annotation" }, state.classes) };
}

// -- changes, through the store --------------------------------------------------------------

export function addLayer(store, layer) {
  store.set({ layers: [...store.get().layers, painted(layer, store.get().classes)] });
}

export function removeLayer(store, key) {
  store.set({ layers: store.get().layers.filter((l) => layerKey(l) !== key) });
}

// A new palette comes with new colours or hidden classes; `palette` in `patch` (the image's
// display window) is taken as it is, with a new paletteKey.
export function updateLayer(store, key, patch) {
  const { layers, classes } = store.get();
  store.set({ layers: layers.map((l) => {
    if (layerKey(l) !== key) return l;
    const next = { ...l, ...patch };
    if ("colours" in patch || "hiddenClasses" in patch) return painted(next, classes);
    if ("palette" in patch) next.paletteKey = ++paletteCount;
    return next;
  }) });
}

// New classes (the dataset's setup changed): each layer keeps its colours and gets the new ones.
export function setClasses(store, classes) {
  const layers = store.get().layers.map((l) => {
    const colours = new Map(l.colours);
    for (const [id, colour] of defaultColours(l, classes)) if (!colours.has(id)) colours.set(id, colour);
    return painted({ ...l, colours }, classes);
  });
  store.set({ classes, layers });
}

// The layers after the catalog's dataset document `doc` changed: new ones are added (a new
// segmentation shown, as it is what the person waits for), gone ones dropped, changed ones get
// a new version. Returns the layers whose files changed, so the views can forget their tiles.
export function mergeLayers(store, doc) {
  const { layers, editing, fingerprint } = store.get();
  const known = new Map(layers.map((l) => [layerKey(l), l]));
  const replaced = [];
  const merged = doc.layers.map((l) => {
    const old = known.get(layerKey(l));
    if (!old) return newLayer(l, l.kind === "segmentation", store.get());
    const next = { ...old, label: l.label, state: l.state, slices: l.slices, model: l.model, objects: l.objects };
    const version = versionOf(l, fingerprint);
    if (["segmentation", "difference"].includes(old.kind) && version !== old.version) {
      next.version = version;
      replaced.push(old);
    }
    const editingThis = old.kind === "annotation" && old.name === editing;
    if (old.kind === "annotation" && !editingThis && JSON.stringify(old.slices) !== JSON.stringify(l.slices)) {
      next.version = String(Date.now());  // painted elsewhere: fetch its tiles again
    }
    return next;
  });
  // the live layer of a running fine-tune is the viewer's own, not the catalog's
  merged.push(...layers.filter((l) => l.kind === "live"));
  store.set({ layers: merged });
  return replaced;
}

export function annotationNames(layers) {
  return layers.filter((l) => l.kind === "annotation").map((l) => l.name);
}
