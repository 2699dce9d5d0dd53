// The dataset viewer page: an XY view with XZ and YZ views beside it, a slice slider and keys,
// zoom and pan, brightness and contrast, overlay layers with opacity and per-class colours, the
// voxel under the cursor, the annotation editor, and buttons that start segmentation and
// fine-tuning jobs.
import { API, el, getJSON, sendJSON } from "./common.js";
import { TiledView } from "./tiled_view.js";
import { AnnotationEditor } from "./annotator.js";
import { classesIn, defaultColours, layerClasses, makePalette } from "./colours.js";
import { watchCatalog } from "./layer_watch.js";
import { sliceGrey } from "./fill.js";
import { SetupPanel } from "./setup_panel.js";
import { fetchSlice, interpolateBetween } from "./interpolation.js";
import { AUTO_PERCENTILES, drawHistogram, percentile, viewHistogram, windowPalette } from "./contrast.js";
import { rememberState, rememberUndo, restoredState, restoredUndo } from "./viewer_state.js";
import { LiveTraining } from "./live_training.js";

const $ = (id) => document.getElementById(id);
const root = $("viewer");
const datasetName = root.dataset.dataset;
const enc = encodeURIComponent;

const page = { views: {}, layers: [], cursor: [0, 0, 0], classes: [] };

function layerKey(layer) { return layer.name ? `${layer.kind}:${layer.name}` : layer.kind; }

function paletteFor(layer) {
  const hidden = layer.hiddenClasses || new Set();
  return makePalette(classesIn(layer, page.classes), { hidden, showBackground: layer.kind === "annotation" });
}

// The layer whose colours the editor and the class buttons use: the annotation being edited.
function editingLayer() {
  return page.layers.find((l) => l.kind === "annotation" && l.name === page.editing)
    || { kind: "annotation", colours: defaultColours({ kind: "annotation" }, page.classes) };
}

function refreshPalettes() {
  for (const layer of page.layers) {
    if (layer.kind === "raw") continue;  // its table is the display window (applyFilter)
    layer.palette = paletteFor(layer);
    layer.paletteKey = (layer.paletteKey || 0) + 1;
  }
  if (page.editor) page.editor.setPalette(paletteFor({ ...editingLayer(), hiddenClasses: new Set() }));
  redrawAll();
}

function redrawAll() {
  for (const view of Object.values(page.views)) {
    view.layers = page.layers.filter((l) => !(l.kind === "annotation" && l.name === page.editing && view.axis === "z")
      && (!l.axes || l.axes.includes(view.axis)));
    view.requestDraw();
  }
}

// -- remembering the view across reloads ------------------------------------------------------------

let persistTimer = null;
function persist() {
  clearTimeout(persistTimer);
  persistTimer = setTimeout(() => {
    if (!page.editor) return;
    const view = page.views.z;
    const layers = {};
    for (const l of page.layers) {
      layers[layerKey(l)] = { visible: l.visible, opacity: l.opacity, colours: Object.fromEntries(l.colours) };
    }
    rememberState(datasetName, {
      z: page.cursor[0], annotation: page.editing || "", brush: page.editor.brushSize, tool: page.editor.tool,
      window: [Number($("window-low").value), Number($("window-high").value)],
      view: view.autoFit ? null : { scale: view.scale, left: view.left, top: view.top }, layers,
    });
  }, 150);
}

let undoTimer = null;
function persistUndo() {
  clearTimeout(undoTimer);
  const name = page.editing, history = page.editor.history;
  if (!name) return;
  undoTimer = setTimeout(() => rememberUndo(datasetName, name, history), 300);
}

function applySavedLayer(layer, saved) {
  if (!saved) return;
  if (typeof saved.opacity === "number") layer.opacity = saved.opacity;
  for (const [id, colour] of Object.entries(saved.colours || {})) layer.colours.set(Number(id), colour);
}

function setSlice(z) {
  const nz = page.shape[0];
  z = Math.max(0, Math.min(nz - 1, z));
  page.cursor[0] = z;
  $("slice").value = String(z);
  $("slice-label").textContent = `${z} / ${nz - 1}`;
  page.views.z.setIndex(z);
  updateCrosshairs();
  if (page.editor && page.editor.active) {
    page.editor.load(z).then(() => page.views.z.requestDraw(), showError);
  }
  root.dataset.slice = String(z);
  persist();
  clearTimeout(page.histogramTimer);
  page.histogramTimer = setTimeout(() => refreshHistogram().catch(() => {}), 200);
}

function updateCrosshairs() {
  const [z, y, x] = page.cursor;
  page.views.z.crosshair = { row: y, col: x };
  page.views.y.crosshair = { row: z, col: x };
  page.views.x.crosshair = { row: z, col: y };
  page.views.y.setIndex(y);
  page.views.x.setIndex(x);
  for (const view of Object.values(page.views)) view.requestDraw();
}

let voxelTimer = null;
function showVoxel(z, y, x) {
  clearTimeout(voxelTimer);
  voxelTimer = setTimeout(async () => {
    // the layers on screen only: the readout keeps a fixed height beside the sidebar
    const labels = page.layers.filter((l) => !["raw", "difference", "live"].includes(l.kind) && (l.visible || l.name === page.editing)).map(layerKey).join(",");
    try {
      const v = await getJSON(`/datasets/${enc(datasetName)}/voxel?z=${z}&y=${y}&x=${x}&layers=${enc(labels)}`);
      const lines = [`z ${v.z}  y ${v.y}  x ${v.x}`, `value ${v.value}`];
      for (const [name, id] of Object.entries(v.labels)) {
        const cls = page.classes.find((c) => c.id === id);
        lines.push(`${name}: ${id === 255 ? "-" : id}${cls ? " " + cls.name : ""}`);
      }
      $("voxel").textContent = lines.join("\n");
    } catch (_) { /* outside the volume or a layer without files */ }
  }, 60);
}

function onCursor(axis, at) {
  if (!at) return;
  const [row, col] = at;
  const [z, y, x] = page.cursor;
  const voxel = axis === "z" ? [z, row, col] : axis === "y" ? [row, y, col] : [row, col, x];
  $("voxel").dataset.voxel = voxel.join(",");
  showVoxel(...voxel);
}

function moveCursorFromSide(axis, at) {
  // a click in a side view moves the slice there
  if (!at) return;
  setSlice(at[0]);
}

function showError(error) {
  $("run-message").textContent = error.message || String(error);
}

// -- layers panel ------------------------------------------------------------------------------

function layerControls(layer) {
  const visible = el("input", { type: "checkbox", id: `layer-${layerKey(layer)}-visible`, checked: layer.visible,
    onchange: (e) => { layer.visible = e.target.checked; redrawAll(); persist(); page.live.fillStartFrom(); } });
  visible.checked = layer.visible;
  const opacity = el("input", { type: "range", min: "0", max: "100", value: String(layer.opacity * 100),
    title: "opacity", onchange: null, oninput: (e) => { layer.opacity = e.target.value / 100; redrawAll(); persist(); } });
  const box = el("div", { class: "layer", dataset: { layer: layerKey(layer) } },
    el("div", { class: "row" }, visible, el("span", {}, layer.label)));
  if (layer.kind === "raw") return box;
  box.append(el("div", { class: "row" }, el("label", {}, "opacity"), opacity));
  const classes = el("div", { class: "classes" });
  for (const c of layerClasses(layer, page.classes)) {
    if (c.id === 0 && layer.kind !== "annotation") continue;
    const shown = el("input", { type: "checkbox", title: `show ${c.name}`,
      onchange: (e) => { (e.target.checked ? layer.hiddenClasses.delete(c.id) : layer.hiddenClasses.add(c.id)); refreshPalettes(); } });
    shown.checked = true;
    const colour = el("input", { type: "color", value: layer.colours.get(c.id) || c.color, title: `colour of ${c.name}`,
      dataset: { classId: String(c.id) },
      oninput: (e) => { layer.colours.set(c.id, e.target.value); refreshPalettes(); renderClassButtons(); persist(); } });
    classes.append(el("span", { class: "swatch" }, shown, colour, c.name));
  }
  box.append(classes);
  if (layer.kind === "difference") box.append(scoresLine(layer));
  return box;
}

// The scores of a segmentation against ground truth, fetched once per version of its files.
function scoresLine(layer) {
  const line = el("div", { class: "scores muted", dataset: { scores: layer.name } }, "scores: …");
  const key = `${layer.name}@${layer.version}`;
  if (!page.scores) page.scores = new Map();
  if (!page.scores.has(key)) {
    page.scores.set(key, getJSON(`/datasets/${enc(datasetName)}/segmentations/${enc(layer.name)}/scores`));
  }
  page.scores.get(key).then((s) => {
    const parts = Object.entries(s.iou).filter(([name]) => name !== "background")
      .map(([name, iou]) => `${name}: IoU ${iou === null ? "-" : iou.toFixed(3)}, Dice ${s.dice[name] === null ? "-" : s.dice[name].toFixed(3)}`);
    line.textContent = `${parts.join("; ")} · false positives ${s.false_positives} · false negatives ${s.false_negatives}`;
    line.dataset.ready = "true";
  }, (error) => { line.textContent = `scores: ${error.message}`; });
  return line;
}

function renderLayers() {
  $("layers").replaceChildren(...page.layers.map(layerControls));
}

// -- annotation --------------------------------------------------------------------------------

function renderClassButtons() {
  const buttons = page.classes.map((c) => el("button", {
    class: `classbtn${page.editor.classId === c.id ? " active" : ""}`, dataset: { classId: String(c.id) },
    onclick: () => { page.editor.classId = c.id; renderClassButtons(); },
  }, el("i", { style: `background:${editingLayer().colours.get(c.id) || c.color}` }), c.name));
  $("class-buttons").replaceChildren(...buttons);
}

function selectTool(tool) {
  page.editor.tool = tool;
  persist();
  for (const button of document.querySelectorAll("[data-tool]")) {
    button.classList.toggle("active", button.dataset.tool === tool);
  }
}

function updateUndoButtons() {
  $("undo").disabled = !page.editor.canUndo();
  $("redo").disabled = !page.editor.canRedo();
}

async function chooseAnnotation(name) {
  page.editing = name || null;
  await page.editor.open(page.editing, page.cursor[0]);
  if (page.editing && page.editor.history.size === 0) page.editor.history = restoredUndo(datasetName, page.editing);
  persist();
  page.views.z.editorCanvas = page.editing ? page.editor.canvas : null;
  root.dataset.annotation = page.editing || "";
  refreshPalettes();
  renderClassButtons();
  updateUndoButtons();
}

// After the dataset's setup changed: new classes to paint and show, with their colours.
async function reloadClasses() {
  const doc = await getJSON(`/datasets/${enc(datasetName)}`);
  page.classes = doc.classes;
  for (const layer of page.layers) {
    const defaults = defaultColours(layer, page.classes);
    for (const [id, colour] of defaults) if (!layer.colours.has(id)) layer.colours.set(id, colour);
  }
  if (!page.classes.some((c) => c.id === page.editor.classId)) {
    page.editor.classId = (page.classes.find((c) => c.id !== 0) || page.classes[0]).id;
  }
  mergeLayers(doc);
  renderClassButtons();
}

// -- layers and models that appear while the page is open ----------------------------------------

function versionOf(layer) {
  return layer.kind === "raw" ? (page.fingerprint || "") : (layer.version || layer.state || "");
}

function newLayer(l, visible) {
  return { ...l, visible, opacity: l.kind === "raw" ? 1 : 0.5, hiddenClasses: new Set(),
    version: versionOf(l), colours: defaultColours(l, page.classes) };
}

function mergeLayers(doc) {
  const known = new Map(page.layers.map((l) => [layerKey(l), l]));
  page.layers = doc.layers.map((l) => {
    const old = known.get(layerKey(l));
    // a segmentation that lands while someone looks is what they are waiting for: show it
    if (!old) return newLayer(l, l.kind === "segmentation");
    const editing = old.kind === "annotation" && old.name === page.editing;
    const version = versionOf(l);
    if (["segmentation", "difference"].includes(old.kind) && version !== old.version) {
      old.version = version;
      for (const view of Object.values(page.views)) view.forgetLayer(old);
    }
    if (old.kind === "annotation" && !editing && JSON.stringify(old.slices) !== JSON.stringify(l.slices)) {
      old.version = String(Date.now());  // painted elsewhere: fetch its tiles again
    }
    Object.assign(old, { label: l.label, state: l.state, slices: l.slices, model: l.model });
    return old;
  });
  // the live layer of a running fine-tune is the viewer's own, not the catalog's
  page.layers.push(...[...known.values()].filter((l) => l.kind === "live"));
  page.live.fillStartFrom();
  refreshPalettes();
  renderLayers();
  fillAnnotationSelect(doc.layers.filter((l) => l.kind === "annotation").map((l) => l.name), page.editing);
}

function fillModelPickers(models) {
  const names = models.filter((m) => m.state === "ok").map((m) => m.name);
  const keep = (select, fallback) => {
    const before = select.value;
    return names.includes(before) ? before : fallback;
  };
  const segment = $("segment-model");
  const segmentValue = keep(segment, names[0] || "");
  segment.replaceChildren(...names.map((n) => el("option", { value: n, title: n }, n)));
  segment.value = segmentValue;
  $("segment-start").disabled = names.length === 0;
  page.live.fillStartFrom(models);
}

function fillAnnotationSelect(names, chosen) {
  $("annotation-select").replaceChildren(el("option", { value: "" }, "(no annotation)"),
    ...names.map((n) => el("option", { value: n }, n)));
  $("annotation-select").value = chosen || "";
}

// A stroke painted with no annotation chosen creates one, named from the name field or the time.
function newAnnotationName() {
  const typed = $("annotation-name").value.trim();
  if (typed) return typed;
  const now = new Date(), two = (n) => String(n).padStart(2, "0");
  return `annotation-${now.getFullYear()}${two(now.getMonth() + 1)}${two(now.getDate())}-` +
    `${two(now.getHours())}${two(now.getMinutes())}${two(now.getSeconds())}`;
}

async function createAnnotationForStroke() {
  const name = newAnnotationName();
  page.views.z.editorCanvas = page.editor.canvas;  // show the stroke while the annotation is made
  try {
    await sendJSON("POST", `/datasets/${enc(datasetName)}/annotations`, { name });
  } catch (error) {
    page.views.z.editorCanvas = null;
    showError(`painting needs an annotation, and none could be created: ${error.message || error}`);
    throw error;
  }
  page.editing = name;
  const doc = await getJSON(`/datasets/${enc(datasetName)}`);
  mergeLayers(doc);
  $("annotation-name").value = "";
  root.dataset.annotation = name;
  $("run-message").textContent = `Created the annotation ${name} for your strokes.`;
  persist();
  return name;
}

// The part of the XY slice on screen, in slice pixels: where a fill may go.
function visibleBounds() {
  const view = page.views.z;
  const [top, left] = view.toPlane(0, 0, false);
  const [bottom, right] = view.toPlane(view.canvas.width, view.canvas.height, false);
  return [Math.max(0, Math.floor(top)), Math.max(0, Math.floor(left)),
    Math.min(page.shape[1] - 1, Math.ceil(bottom) - 1), Math.min(page.shape[2] - 1, Math.ceil(right) - 1)];
}

async function createAnnotation() {
  const name = $("annotation-name").value.trim();
  try {
    await sendJSON("POST", `/datasets/${enc(datasetName)}/annotations`, { name });
    const doc = await getJSON(`/datasets/${enc(datasetName)}`);
    fillAnnotationSelect(doc.layers.filter((l) => l.kind === "annotation").map((l) => l.name), name);
    $("annotation-name").value = "";
    await chooseAnnotation(name);
    showError("");
  } catch (error) { showError(error); }
}

// -- between slices --------------------------------------------------------------------------------

function say(text) { $("interp-message").textContent = text; }

async function copyPrevious() {
  const z = page.cursor[0];
  if (!page.editing) { say("choose or create an annotation first"); return; }
  if (z === 0) { say("slice 0 has no slice before it"); return; }
  await page.editor.flush();
  const source = await fetchSlice(datasetName, page.editing, z - 1);
  const count = page.editor.applyLabels(source);
  say(count ? `copied ${count} pixels from slice ${z - 1}` : `slice ${z - 1} has nothing to copy here`);
}

// Default ends: the painted slices nearest below and above the current one.
function suggestInterpolation() {
  const layer = page.layers.find((l) => l.kind === "annotation" && l.name === page.editing);
  const slices = (layer && layer.slices) || [];
  const z = page.cursor[0];
  const below = slices.filter((s) => s <= z), above = slices.filter((s) => s > z);
  if ($("interp-from").value === "" && below.length) $("interp-from").value = String(Math.max(...below));
  if ($("interp-to").value === "" && above.length) $("interp-to").value = String(Math.min(...above));
}

async function interpolate() {
  if (!page.editing) { say("choose or create an annotation first"); return; }
  suggestInterpolation();
  const za = Number($("interp-from").value), zb = Number($("interp-to").value);
  if ($("interp-from").value === "" || $("interp-to").value === "") { say("give the two painted slices"); return; }
  await page.editor.flush();
  say(`filling the slices between ${za} and ${zb} …`);
  try {
    const count = await interpolateBetween({ dataset: datasetName, annotation: page.editing, za, zb,
      height: page.shape[1], width: page.shape[2], onSlice: (z) => say(`filled slice ${z}`) });
    say(count ? `filled the slices between ${Math.min(za, zb)} and ${Math.max(za, zb)}: ${count} pixels`
      : `nothing to fill: the objects on slices ${za} and ${zb} do not overlap (or the slices between are painted); paint a slice in between first`);
    root.dataset.interpolated = `${za}-${zb}`;
    await page.editor.load(page.cursor[0]);
    const layer = page.layers.find((l) => l.kind === "annotation" && l.name === page.editing);
    if (layer) layer.version = String(Date.now());
    redrawAll();
  } catch (error) { say(error.message || String(error)); }
}

// -- jobs ----------------------------------------------------------------------------------------

async function startSegmentation() {
  try {
    const job = await sendJSON("POST", "/jobs/segment", { dataset: datasetName, model: $("segment-model").value });
    $("run-message").replaceChildren("Started ", el("a", { href: `/jobs#${job.id}` }, `job ${job.id}`));
  } catch (error) { showError(error); }
}

// -- wiring --------------------------------------------------------------------------------------

function applyFilter() {
  const low = Number($("window-low").value), high = Number($("window-high").value);
  const raw = page.layers.find((l) => l.kind === "raw");
  if (raw) { raw.palette = windowPalette(low, high); raw.paletteKey = (raw.paletteKey || 0) + 1; }
  if (page.histogram) drawHistogram($("histogram"), page.histogram, low, high);
  root.dataset.window = `${low}-${high}`;
  const filter = `brightness(${$("brightness").value / 100}) contrast(${$("contrast").value / 100})`;
  for (const view of Object.values(page.views)) { view.filter = filter; view.requestDraw(); }
}

async function refreshHistogram() {
  const raw = page.layers.find((l) => l.kind === "raw");
  page.histogram = await viewHistogram(page.views.z, raw);
  drawHistogram($("histogram"), page.histogram, Number($("window-low").value), Number($("window-high").value));
}

async function autoContrast() {
  await refreshHistogram();
  $("window-low").value = String(percentile(page.histogram, AUTO_PERCENTILES[0]));
  $("window-high").value = String(Math.max(percentile(page.histogram, AUTO_PERCENTILES[1]), Number($("window-low").value) + 1));
  applyFilter();
  persist();
}

function bindKeys() {
  document.addEventListener("keydown", (event) => {
    // sliders and fields handle their own keys (the slice slider steps slices itself)
    if (event.target.matches("input[type=text], input[type=number], input[type=range], select")) return;
    const key = event.key;
    if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === "z") {
      event.preventDefault();
      (event.shiftKey ? page.editor.redo() : page.editor.undo());
      return;
    }
    if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === "y") {
      event.preventDefault(); page.editor.redo(); return;
    }
    const steps = { ArrowRight: 1, ArrowUp: 1, PageUp: 10, ArrowLeft: -1, ArrowDown: -1, PageDown: -10 };
    if (key in steps) { event.preventDefault(); setSlice(page.cursor[0] + steps[key]); return; }
    const tools = { b: "brush", e: "eraser", f: "fill", p: "pan" };
    if (tools[key]) { selectTool(tools[key]); return; }
    if (key === "+" || key === "=") page.views.z.zoomBy(1.25);
    if (key === "-") page.views.z.zoomBy(0.8);
    if (key === "0") { page.views.z.autoFit = true; page.views.z.fit(); }
    if (/^[1-9]$/.test(key)) {
      const cls = page.classes.find((c) => c.id === Number(key));
      if (cls) { page.editor.classId = cls.id; renderClassButtons(); }
    }
  });
}

async function start() {
  const doc = await getJSON(`/datasets/${enc(datasetName)}`);
  const [models, projects] = await Promise.all([getJSON("/models"), getJSON("/projects")]);
  const project = projects.find((p) => p.name === doc.project);
  page.live = new LiveTraining({ dataset: datasetName, page, hooks: {
    layersChanged: () => { refreshPalettes(); renderLayers(); },
    redraw: redrawAll,
    say: (text) => { $("run-message").textContent = text; },
    projectDefault: () => (project && project.default_model) || null,
  } });
  if (!doc.shape || !doc.pyramid) {
    throw new Error(`dataset ${datasetName} cannot be shown: it is ${doc.state}` +
      (doc.error ? ` (${doc.error})` : ""));
  }
  page.shape = doc.shape;
  page.classes = doc.classes;
  page.fingerprint = doc.fingerprint;
  const saved = restoredState(datasetName);
  page.layers = doc.layers.map((l) => newLayer(l, l.kind === "raw" || saved.shown.has(layerKey(l))));
  for (const layer of page.layers) applySavedLayer(layer, saved.layers[layerKey(layer)]);
  const voxel = doc.voxel_size || [1, 1, 1];
  const aspect = voxel[0] && voxel[1] ? Math.min(8, Math.max(1 / 8, voxel[0] / voxel[1])) : 1;
  for (const axis of ["z", "y", "x"]) {
    page.views[axis] = new TiledView($(`view-${axis}`), {
      dataset: datasetName, axis, pyramid: doc.pyramid[axis], rowAspect: axis === "z" ? 1 : aspect,
      onCursor: (at) => onCursor(axis, at),
    });
  }
  page.views.y.canvas.addEventListener("dblclick", (e) => moveCursorFromSide("y", page.views.y.toPlane(...page.views.y.eventPoint(e))));
  page.views.x.canvas.addEventListener("dblclick", (e) => moveCursorFromSide("x", page.views.x.toPlane(...page.views.x.eventPoint(e))));
  page.views.z.canvas.addEventListener("dblclick", (e) => {
    const at = page.views.z.toPlane(...page.views.z.eventPoint(e));
    if (at) { page.cursor[1] = at[0]; page.cursor[2] = at[1]; updateCrosshairs(); }
  });
  page.views.z.onChange = (view) => { $("zoom-label").textContent = `${Math.round(view.scale * 100)} %`; persist(); };
  page.cursor = [0, Math.floor(doc.shape[1] / 2), Math.floor(doc.shape[2] / 2)];

  page.editor = new AnnotationEditor({
    dataset: datasetName, height: doc.shape[1], width: doc.shape[2],
    createAnnotation: createAnnotationForStroke,
    currentSlice: () => page.cursor[0],
    fillBounds: visibleBounds,
    fillGrey: (bounds) => sliceGrey({ dataset: datasetName, z: page.cursor[0], bounds, version: page.fingerprint || "" }),
    onChange: () => { page.views.z.requestDraw(); updateUndoButtons(); persistUndo(); },
    onSaveState: (state, message) => {
      $("save-state").dataset.state = state;
      $("save-state").textContent = { pending: "unsaved", saving: "saving…", saved: "saved", error: `not saved: ${message}` }[state] || "";
      if (state === "saved") {
        // other views show the annotation from tiles: make them fetch the new version
        const layer = page.layers.find((l) => l.kind === "annotation" && l.name === page.editing);
        if (layer) { layer.version = String(Date.now()); }
        redrawAll();
      }
    },
  });
  page.editor.classId = (page.classes.find((c) => c.id !== 0) || page.classes[0]).id;
  page.views.z.onPointer = page.editor;
  // the brush outline under the cursor, at the size a stroke will have
  page.views.z.brushRadius = () => (["brush", "eraser"].includes(page.editor.tool) && page.editor.wants()
    ? page.editor.brushSize / 2 : 0);
  refreshPalettes();
  renderLayers();
  renderClassButtons();
  selectTool("brush");
  fillAnnotationSelect(doc.layers.filter((l) => l.kind === "annotation").map((l) => l.name), "");

  fillModelPickers(models);

  $("slice").max = String(doc.shape[0] - 1);
  $("slice").addEventListener("input", (e) => setSlice(Number(e.target.value)));
  $("zoom-in").onclick = () => page.views.z.zoomBy(1.25);
  $("zoom-out").onclick = () => page.views.z.zoomBy(0.8);
  $("zoom-fit").onclick = () => { page.views.z.autoFit = true; page.views.z.fit(); };
  $("brightness").addEventListener("input", applyFilter);
  $("contrast").addEventListener("input", applyFilter);
  for (const id of ["window-low", "window-high"]) $(id).addEventListener("input", () => { applyFilter(); persist(); });
  $("auto-contrast").onclick = () => autoContrast().catch(showError);
  if (saved.window) { $("window-low").value = String(saved.window[0]); $("window-high").value = String(saved.window[1]); }
  applyFilter();
  $("brush-size").addEventListener("input", (e) => { page.editor.brushSize = Number(e.target.value); $("brush-size-label").textContent = e.target.value; persist(); });
  if (saved.brush) { $("brush-size").value = String(saved.brush); $("brush-size-label").textContent = String(saved.brush); }
  page.editor.brushSize = Number($("brush-size").value);
  for (const button of document.querySelectorAll("[data-tool]")) button.onclick = () => selectTool(button.dataset.tool);
  $("fill-mode").addEventListener("change", (e) => { page.editor.fillMode = e.target.value; });
  $("fill-tolerance").addEventListener("input", (e) => {
    page.editor.fillTolerance = Number(e.target.value); $("fill-tolerance-label").textContent = e.target.value; });
  page.editor.fillTolerance = Number($("fill-tolerance").value);
  $("undo").onclick = () => page.editor.undo();
  $("redo").onclick = () => page.editor.redo();
  $("annotation-select").addEventListener("change", (e) => chooseAnnotation(e.target.value).catch(showError));
  $("annotation-create").onclick = createAnnotation;
  $("copy-previous").onclick = () => copyPrevious().catch((e) => say(e.message));
  $("interpolate").onclick = () => interpolate();
  $("segment-start").onclick = startSegmentation;
  $("train-base").addEventListener("change", (e) => { e.target.dataset.chosen = "true"; });
  window.addEventListener("beforeunload", () => page.editor.flush());
  bindKeys();

  if (saved.tool) selectTool(saved.tool);
  if (saved.view && saved.view.scale) {
    Object.assign(page.views.z, { autoFit: false, scale: saved.view.scale, left: saved.view.left, top: saved.view.top });
    page.views.z.changed();
  }
  setSlice(Number(saved.z || 0));
  const annotations = doc.layers.filter((l) => l.kind === "annotation").map((l) => l.name);
  if (saved.annotation && annotations.includes(saved.annotation)) {
    $("annotation-select").value = saved.annotation;
    await chooseAnnotation(saved.annotation);
  }
  updateUndoButtons();
  redrawAll();
  page.setup = new SetupPanel({ root: $("setup-panel"), dataset: datasetName, onSaved: reloadClasses });
  page.setup.bind();
  page.stopWatching = watchCatalog({
    dataset: datasetName, since: { layers: doc.layers, models },
    onDataset: mergeLayers, onModels: fillModelPickers,
  });
  page.live.bind();
  root.dataset.ready = "true";
  window.biosegmentViewer = page;  // for people poking at it from the console (and the tests)
}

start().catch((error) => { showError(error); root.dataset.ready = "error"; });
