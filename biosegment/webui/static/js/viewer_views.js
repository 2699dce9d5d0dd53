// The viewer's three views and moving through the volume: the XY view with the XZ and YZ views
// beside it, the slice slider and keys, zoom buttons and keys, double-clicks that move the
// planes, crosshairs, and the voxel under the cursor (with the object there, in a segmentation
// split into objects). The views draw the store's layers (the
// annotation being edited comes from the editor's own canvas in the XY view instead).
import { $, enc, getJSON } from "./common.js";
import { TiledView } from "./tiled_view.js";
import { layerKey } from "./viewer_layers.js";

export function createViews(store, doc) {
  const views = {};
  const voxel = doc.voxel_size || [1, 1, 1];
  const aspect = voxel[0] && voxel[1] ? Math.min(8, Math.max(1 / 8, voxel[0] / voxel[1])) : 1;
  for (const axis of ["z", "y", "x"]) {
    views[axis] = new TiledView($(`view-${axis}`), {
      dataset: store.get().dataset, axis, pyramid: doc.pyramid[axis], rowAspect: axis === "z" ? 1 : aspect,
      onCursor: (at) => onCursor(store, axis, at),
    });
  }
  return views;
}

export function redrawAll(store, views) {
  const { layers, editing } = store.get();
  for (const view of Object.values(views)) {
    view.layers = layers.filter((l) => !(l.kind === "annotation" && l.name === editing && view.axis === "z")
      && (!l.axes || l.axes.includes(view.axis)));
    view.requestDraw();
  }
}

export function setSlice(store, z) {
  const { shape, cursor } = store.get();
  store.set({ cursor: [Math.max(0, Math.min(shape[0] - 1, z)), cursor[1], cursor[2]] });
}

function showCursor(views, cursor, shape) {
  const [z, y, x] = cursor;
  $("slice").value = String(z);
  $("slice-label").textContent = `${z} / ${shape[0] - 1}`;
  $("viewer").dataset.slice = String(z);
  views.z.setIndex(z);
  views.z.crosshair = { row: y, col: x };
  views.y.crosshair = { row: z, col: x };
  views.x.crosshair = { row: z, col: y };
  views.y.setIndex(y);
  views.x.setIndex(x);
  for (const view of Object.values(views)) view.requestDraw();
}

// A class id as a person reads it: the class's name (255 is a pixel nobody painted).
function className(classes, id) {
  if (id === 255) return "not painted";
  const cls = classes.find((c) => c.id === id);
  return cls ? cls.name : `class ${id}`;
}

// The label layers the readout reads: those on screen (and the one being edited, and the
// segmentation whose objects the Objects panel lists), each by the name the layers panel shows.
function readoutLayers(state) {
  const shown = state.layers.filter((l) => !["raw", "difference", "live"].includes(l.kind)
    && (l.visible || l.name === state.editing || (l.kind === "segmentation" && l.name === state.objectsOf)));
  return new Map(shown.map((l) => [layerKey(l), l.label || layerKey(l)]));
}

// Until the cursor first reads a voxel, the readout holds a line per value it will show, so it
// has its full height from the start and the page does not jump at the first hover.
let voxelRead = false;
function readoutPlaceholder(state) {
  if (voxelRead) return;
  const lines = ["z –  y –  x –", "grey value –", ...[...readoutLayers(state).values()].map((label) => `${label}: –`)];
  $("voxel").textContent = lines.join("\n");
}

let voxelTimer = null;
function showVoxel(store, z, y, x) {
  clearTimeout(voxelTimer);
  voxelTimer = setTimeout(async () => {
    const { dataset, classes } = store.get();
    const labelOf = readoutLayers(store.get());
    try {
      const v = await getJSON(`/datasets/${enc(dataset)}/voxel?z=${z}&y=${y}&x=${x}&layers=${enc([...labelOf.keys()].join(","))}`);
      const lines = [`z ${v.z}  y ${v.y}  x ${v.x}`, `grey value ${v.value}`];
      const objects = v.objects || {};
      for (const [key, id] of Object.entries(v.labels)) {
        // a segmentation split into objects names the object too (0: none there)
        const object = objects[key] ? `, object ${objects[key]}` : "";
        lines.push(`${labelOf.get(key) || key}: ${className(classes, id)}${object}`);
      }
      voxelRead = true;
      $("voxel").textContent = lines.join("\n");
    } catch (_) { /* outside the volume or a layer without files */ }
  }, 60);
}

function onCursor(store, axis, at) {
  if (!at) return;
  const [row, col] = at;
  const [z, y, x] = store.get().cursor;
  const voxel = axis === "z" ? [z, row, col] : axis === "y" ? [row, y, col] : [row, col, x];
  $("voxel").dataset.voxel = voxel.join(",");
  showVoxel(store, ...voxel);
}

function zoomTo(view, zoom) {
  Object.assign(view, { autoFit: false, scale: zoom.scale, left: zoom.left, top: zoom.top });
  view.changed();
}

function fit(view) { view.autoFit = true; view.fit(); }

// Slider, buttons, double-clicks and keys move through the volume; the views follow the store.
export function bindNavigation(store, views) {
  const z = views.z;
  store.subscribe((s) => s.cursor, (cursor, state) => showCursor(views, cursor, state.shape));
  store.subscribe((s) => s.layers, () => redrawAll(store, views));
  store.subscribe((s) => s.editing, () => redrawAll(store, views));
  store.subscribe((s) => [...readoutLayers(s).values()].join("\n"), (_, state) => readoutPlaceholder(state));
  readoutPlaceholder(store.get());
  z.onChange = (view) => {
    $("zoom-label").textContent = `${Math.round(view.scale * 100)} %`;
    store.set({ zoom: view.autoFit ? null : { scale: view.scale, left: view.left, top: view.top } });
  };
  const side = (view) => (e) => {
    const at = view.toPlane(...view.eventPoint(e));
    if (at) setSlice(store, at[0]);  // a double-click in a side view moves the slice there
  };
  views.y.canvas.addEventListener("dblclick", side(views.y));
  views.x.canvas.addEventListener("dblclick", side(views.x));
  z.canvas.addEventListener("dblclick", (e) => {
    const at = z.toPlane(...z.eventPoint(e));
    if (at) store.set({ cursor: [store.get().cursor[0], at[0], at[1]] });
  });
  $("slice").max = String(store.get().shape[0] - 1);
  $("slice").addEventListener("input", (e) => setSlice(store, Number(e.target.value)));
  $("zoom-in").onclick = () => z.zoomBy(1.25);
  $("zoom-out").onclick = () => z.zoomBy(0.8);
  $("zoom-fit").onclick = () => fit(z);
  const steps = { ArrowRight: 1, ArrowUp: 1, PageUp: 10, ArrowLeft: -1, ArrowDown: -1, PageDown: -10 };
  document.addEventListener("keydown", (event) => {
    // sliders and fields handle their own keys (the slice slider steps slices itself)
    if (event.target.matches("input[type=text], input[type=number], input[type=range], select")) return;
    const key = event.key;
    if (key in steps) { event.preventDefault(); setSlice(store, store.get().cursor[0] + steps[key]); return; }
    if (key === "+" || key === "=") z.zoomBy(1.25);
    if (key === "-") z.zoomBy(0.8);
    if (key === "0") fit(z);
  });
  const saved = store.get().zoom;
  if (saved && saved.scale) zoomTo(z, saved);
}
