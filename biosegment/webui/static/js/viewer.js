// The dataset viewer page: an XY view with XZ and YZ views beside it, a slice slider and keys,
// zoom and pan, brightness and contrast, overlay layers with opacity and per-class colours, the
// voxel under the cursor, the annotation editor, and buttons that start segmentation and
// fine-tuning jobs.
import { API, el, getJSON, sendJSON } from "./common.js";
import { TiledView } from "./tiled_view.js";
import { AnnotationEditor } from "./annotator.js";
import { makePalette } from "./label_colors.js";

const $ = (id) => document.getElementById(id);
const root = $("viewer");
const datasetName = root.dataset.dataset;
const enc = encodeURIComponent;

const page = { views: {}, layers: [], cursor: [0, 0, 0], classes: [], classColours: new Map() };

function layerKey(layer) { return layer.name ? `${layer.kind}:${layer.name}` : layer.kind; }

function paletteFor(layer) {
  const hidden = layer.hiddenClasses || new Set();
  const classes = page.classes.map((c) => ({ ...c, color: page.classColours.get(c.id) || c.color }));
  return makePalette(classes, { hidden, showBackground: layer.kind === "annotation" });
}

function refreshPalettes() {
  for (const layer of page.layers) {
    layer.palette = paletteFor(layer);
    layer.paletteKey = (layer.paletteKey || 0) + 1;
  }
  if (page.editor) page.editor.setPalette(paletteFor({ kind: "annotation" }));
  redrawAll();
}

function redrawAll() {
  for (const view of Object.values(page.views)) {
    view.layers = page.layers.filter((l) => !(l.kind === "annotation" && l.name === page.editing && view.axis === "z"));
    view.requestDraw();
  }
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
    const labels = page.layers.filter((l) => l.kind !== "raw").map(layerKey).join(",");
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
    onchange: (e) => { layer.visible = e.target.checked; redrawAll(); } });
  visible.checked = layer.visible;
  const opacity = el("input", { type: "range", min: "0", max: "100", value: String(layer.opacity * 100),
    title: "opacity", onchange: null, oninput: (e) => { layer.opacity = e.target.value / 100; redrawAll(); } });
  const box = el("div", { class: "layer", dataset: { layer: layerKey(layer) } },
    el("div", { class: "row" }, visible, el("span", {}, layer.label)));
  if (layer.kind === "raw") return box;
  box.append(el("div", { class: "row" }, el("label", {}, "opacity"), opacity));
  const classes = el("div", { class: "classes" });
  for (const c of page.classes) {
    if (c.id === 0 && layer.kind !== "annotation") continue;
    const shown = el("input", { type: "checkbox", title: `show ${c.name}`,
      onchange: (e) => { (e.target.checked ? layer.hiddenClasses.delete(c.id) : layer.hiddenClasses.add(c.id)); refreshPalettes(); } });
    shown.checked = true;
    const colour = el("input", { type: "color", value: page.classColours.get(c.id) || c.color, title: `colour of ${c.name}`,
      oninput: (e) => { page.classColours.set(c.id, e.target.value); refreshPalettes(); renderClassButtons(); } });
    classes.append(el("span", { class: "swatch" }, shown, colour, c.name));
  }
  box.append(classes);
  return box;
}

function renderLayers() {
  $("layers").replaceChildren(...page.layers.map(layerControls));
}

// -- annotation --------------------------------------------------------------------------------

function renderClassButtons() {
  const buttons = page.classes.map((c) => el("button", {
    class: `classbtn${page.editor.classId === c.id ? " active" : ""}`, dataset: { classId: String(c.id) },
    onclick: () => { page.editor.classId = c.id; renderClassButtons(); },
  }, el("i", { style: `background:${page.classColours.get(c.id) || c.color}` }), c.name));
  $("class-buttons").replaceChildren(...buttons);
}

function selectTool(tool) {
  page.editor.tool = tool;
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
  page.views.z.editorCanvas = page.editing ? page.editor.canvas : null;
  root.dataset.annotation = page.editing || "";
  redrawAll();
  updateUndoButtons();
}

function fillAnnotationSelect(names, chosen) {
  $("annotation-select").replaceChildren(el("option", { value: "" }, "(no annotation)"),
    ...names.map((n) => el("option", { value: n }, n)));
  $("annotation-select").value = chosen || "";
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

// -- jobs ----------------------------------------------------------------------------------------

async function startSegmentation() {
  try {
    const job = await sendJSON("POST", "/jobs/segment", { dataset: datasetName, model: $("segment-model").value });
    $("run-message").replaceChildren("Started ", el("a", { href: `/jobs#${job.id}` }, `job ${job.id}`));
  } catch (error) { showError(error); }
}

async function startTraining() {
  if (!page.editing) { showError("choose or create an annotation first"); return; }
  await page.editor.flush();
  const body = { dataset: datasetName, annotation: page.editing, epochs: Number($("train-epochs").value) };
  if ($("train-base").value) body.base_model = $("train-base").value;
  try {
    const job = await sendJSON("POST", "/jobs/train", body);
    $("run-message").replaceChildren("Started ", el("a", { href: `/jobs#${job.id}` }, `job ${job.id}`));
  } catch (error) { showError(error); }
}

// -- wiring --------------------------------------------------------------------------------------

function applyFilter() {
  const filter = `brightness(${$("brightness").value / 100}) contrast(${$("contrast").value / 100})`;
  for (const view of Object.values(page.views)) { view.filter = filter; view.requestDraw(); }
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
  const models = await getJSON("/models");
  if (!doc.shape || !doc.pyramid) {
    throw new Error(`dataset ${datasetName} cannot be shown: it is ${doc.state}` +
      (doc.error ? ` (${doc.error})` : ""));
  }
  page.shape = doc.shape;
  page.classes = doc.classes;
  const versionOf = (layer) => layer.kind === "raw" ? (doc.fingerprint || "") : (layer.state || "");
  const shown = new Set(new URLSearchParams(location.search).getAll("show"));
  page.layers = doc.layers.map((l) => ({
    ...l, visible: l.kind === "raw" || shown.has(layerKey(l)), opacity: l.kind === "raw" ? 1 : 0.5, hiddenClasses: new Set(),
    version: versionOf(l),
  }));
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
  page.views.z.onChange = (view) => { $("zoom-label").textContent = `${Math.round(view.scale * 100)} %`; };
  page.cursor = [0, Math.floor(doc.shape[1] / 2), Math.floor(doc.shape[2] / 2)];

  page.editor = new AnnotationEditor({
    dataset: datasetName, height: doc.shape[1], width: doc.shape[2],
    onChange: () => { page.views.z.requestDraw(); updateUndoButtons(); },
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
  refreshPalettes();
  renderLayers();
  renderClassButtons();
  selectTool("brush");
  fillAnnotationSelect(doc.layers.filter((l) => l.kind === "annotation").map((l) => l.name), "");

  const modelOptions = models.filter((m) => m.state === "ok").map((m) => el("option", { value: m.name }, m.name));
  $("segment-model").replaceChildren(...modelOptions.map((o) => o.cloneNode(true)));
  $("train-base").replaceChildren(el("option", { value: "" }, "(train from scratch)"), ...modelOptions);
  if (modelOptions.length) $("train-base").value = modelOptions[0].value;
  $("segment-start").disabled = modelOptions.length === 0;

  $("slice").max = String(doc.shape[0] - 1);
  $("slice").addEventListener("input", (e) => setSlice(Number(e.target.value)));
  $("zoom-in").onclick = () => page.views.z.zoomBy(1.25);
  $("zoom-out").onclick = () => page.views.z.zoomBy(0.8);
  $("zoom-fit").onclick = () => { page.views.z.autoFit = true; page.views.z.fit(); };
  $("brightness").addEventListener("input", applyFilter);
  $("contrast").addEventListener("input", applyFilter);
  $("brush-size").addEventListener("input", (e) => { page.editor.brushSize = Number(e.target.value); $("brush-size-label").textContent = e.target.value; });
  page.editor.brushSize = Number($("brush-size").value);
  for (const button of document.querySelectorAll("[data-tool]")) button.onclick = () => selectTool(button.dataset.tool);
  $("undo").onclick = () => page.editor.undo();
  $("redo").onclick = () => page.editor.redo();
  $("annotation-select").addEventListener("change", (e) => chooseAnnotation(e.target.value).catch(showError));
  $("annotation-create").onclick = createAnnotation;
  $("segment-start").onclick = startSegmentation;
  $("train-start").onclick = startTraining;
  window.addEventListener("beforeunload", () => page.editor.flush());
  bindKeys();

  const wanted = new URLSearchParams(location.search).get("annotation");
  setSlice(Number(new URLSearchParams(location.search).get("z") || 0));
  if (wanted) { $("annotation-select").value = wanted; await chooseAnnotation(wanted); }
  updateUndoButtons();
  redrawAll();
  root.dataset.ready = "true";
  window.biosegmentViewer = page;  // for people poking at it from the console (and the tests)
}

start().catch((error) => { showError(error); root.dataset.ready = "error"; });
