// The viewer's painting tools: the annotation editor in the XY view, the class buttons, the
// tools (pan, brush, eraser, fill, take this object) and their keys, brush size, fill mode and
// tolerance, undo and
// redo with their keys, and the save state. The tool, brush size and class are kept in the
// store; the editor follows them.
import { $, el, enc, getJSON } from "./common.js";
import { AnnotationEditor } from "./annotator.js";
import { sliceGrey } from "./fill.js";
import { editingLayer, layerKey, paletteFor, updateLayer } from "./viewer_layers.js";
import { rememberUndo } from "./viewer_state.js";

const SAVE_STATES = { pending: "unsaved", saving: "saving…", saved: "saved" };

// The part of the XY slice on screen, in slice pixels: where a fill may go.
function visibleBounds(view, shape) {
  const [top, left] = view.toPlane(0, 0, false);
  const [bottom, right] = view.toPlane(view.canvas.width, view.canvas.height, false);
  return [Math.max(0, Math.floor(top)), Math.max(0, Math.floor(left)),
    Math.min(shape[1] - 1, Math.ceil(bottom) - 1), Math.min(shape[2] - 1, Math.ceil(right) - 1)];
}

// The layer "take this object" takes from: the topmost shown segmentation or live layer.
export function objectSource(state) {
  const shown = state.layers.filter((l) => ["segmentation", "live"].includes(l.kind) && l.visible && l.name);
  return shown.length ? shown[shown.length - 1] : null;
}

// The region a structure-following fill paints (the server computes it: fill_regions.py).
function regionFetcher(store, dataset) {
  return ({ mode, z, y, x, bounds }) => {
    const query = new URLSearchParams({ mode, y: String(y), x: String(x) });
    if (mode === "object") {
      const source = objectSource(store.get());
      if (!source) return Promise.reject(new Error("show a segmentation or the live layer to take an object from"));
      query.set("layer", `${source.kind}:${source.name}`);
    } else {
      query.set("bounds", bounds.join(","));
    }
    return getJSON(`/datasets/${enc(dataset)}/regions/${z}?${query}`);
  };
}

// needAnnotation(): someone painted with no annotation chosen (the page asks for one).
export function createEditor(store, views, { needAnnotation }) {
  const { dataset, shape } = store.get();
  let undoTimer = null;
  const editor = new AnnotationEditor({
    dataset, height: shape[1], width: shape[2], needAnnotation,
    fillBounds: () => visibleBounds(views.z, shape),
    fillGrey: (bounds) => sliceGrey({ dataset, z: store.get().cursor[0], bounds, version: store.get().fingerprint || "" }),
    fetchRegion: regionFetcher(store, dataset),
    onFillMessage: (text) => { $("fill-message").textContent = text; },
    onChange: () => {
      views.z.requestDraw();
      updateUndoButtons(editor);
      const name = store.get().editing, history = editor.history;
      clearTimeout(undoTimer);
      if (name) undoTimer = setTimeout(() => rememberUndo(dataset, name, history), 300);
    },
    onSaveState: (state, message) => {
      $("save-state").dataset.state = state;
      $("save-state").textContent = state === "error" ? `not saved: ${message}` : SAVE_STATES[state] || "";
      // other views show the annotation from tiles: make them fetch the new version
      const layer = state === "saved" && editingLayer(store.get());
      if (layer && layer.name) updateLayer(store, layerKey(layer), { version: String(Date.now()) });
    },
  });
  views.z.onPointer = editor;
  // the brush outline under the cursor, at the size a stroke will have
  views.z.brushRadius = () => (["brush", "eraser"].includes(editor.tool) && editor.wants() ? editor.brushSize / 2 : 0);
  return editor;
}

function editedAndShown(state) {
  const layer = state.editing && editingLayer(state);
  return Boolean(layer && layer.name && layer.visible);
}

function updateUndoButtons(editor) {
  $("undo").disabled = !editor.canUndo();
  $("redo").disabled = !editor.canRedo();
}

function renderClassButtons(store) {
  const state = store.get(), colours = editingLayer(state).colours;
  $("class-buttons").replaceChildren(...state.classes.map((c) => el("button", {
    class: `classbtn${state.classId === c.id ? " active" : ""}`, dataset: { classId: String(c.id) },
    onclick: () => store.set({ classId: c.id }),
  }, el("i", { style: `background:${colours.get(c.id) || c.color}` }), c.name)));
}

// The colours the editor paints with: the edited annotation's, with no class hidden.
function editorColours(state) {
  return JSON.stringify([state.classes, [...editingLayer(state).colours]]);
}

export function bindAnnotatePanel(store, views, editor, { showError }) {
  const showTool = (tool) => {
    editor.tool = tool;
    for (const button of document.querySelectorAll("[data-tool]")) button.classList.toggle("active", button.dataset.tool === tool);
  };
  const showBrush = (size) => {
    editor.brushSize = size;
    $("brush-size").value = String(size);
    $("brush-size-label").textContent = String(size);
  };
  store.subscribe((s) => s.tool, showTool);
  store.subscribe((s) => s.brush, showBrush);
  store.subscribe((s) => s.classId, (id) => { editor.classId = id; });
  store.subscribe((s) => `${s.classId} ${editorColours(s)}`, () => renderClassButtons(store));
  store.subscribe(editorColours, () => editor.setPalette(paletteFor({ ...editingLayer(store.get()), hiddenClasses: new Set() }, store.get().classes)));
  store.subscribe((s) => s.editing, (editing) => {
    $("viewer").dataset.annotation = editing || "";
    updateUndoButtons(editor);
  });
  // the edited annotation is drawn from the editor's canvas, and only while its layer's box is
  // checked, so the box always says whether its strokes are on screen
  store.subscribe(editedAndShown, (shown) => {
    views.z.editorCanvas = shown ? editor.canvas : null;
    views.z.requestDraw();
  });
  store.subscribe((s) => s.cursor[0], (z) => {
    if (editor.active) editor.load(z).then(() => views.z.requestDraw(), showError);
  });

  for (const button of document.querySelectorAll("[data-tool]")) button.onclick = () => store.set({ tool: button.dataset.tool });
  $("brush-size").addEventListener("input", (e) => store.set({ brush: Number(e.target.value) }));
  const showFillMode = (mode) => {
    editor.fillMode = mode;
    $("fill-tolerance").disabled = mode !== "image";  // the tolerance is the grey-level fill's
  };
  $("fill-mode").addEventListener("change", (e) => showFillMode(e.target.value));
  showFillMode($("fill-mode").value);
  $("fill-tolerance").addEventListener("input", (e) => {
    editor.fillTolerance = Number(e.target.value); $("fill-tolerance-label").textContent = e.target.value; });
  editor.fillTolerance = Number($("fill-tolerance").value);
  $("undo").onclick = () => editor.undo();
  $("redo").onclick = () => editor.redo();
  window.addEventListener("beforeunload", () => editor.flush());
  bindKeys(store, editor);

  const { tool, brush, classId } = store.get();
  showTool(tool); showBrush(brush); editor.classId = classId;
  renderClassButtons(store);
  editor.setPalette(paletteFor({ ...editingLayer(store.get()), hiddenClasses: new Set() }, store.get().classes));
  updateUndoButtons(editor);
}

function bindKeys(store, editor) {
  const tools = { b: "brush", e: "eraser", f: "fill", o: "object", p: "pan" };
  document.addEventListener("keydown", (event) => {
    // sliders and fields handle their own keys
    if (event.target.matches("input[type=text], input[type=number], input[type=range], select")) return;
    const key = event.key, command = event.ctrlKey || event.metaKey;
    if (command && key.toLowerCase() === "z") { event.preventDefault(); (event.shiftKey ? editor.redo() : editor.undo()); return; }
    if (command && key.toLowerCase() === "y") { event.preventDefault(); editor.redo(); return; }
    if (tools[key]) { store.set({ tool: tools[key] }); return; }
    if (/^[1-9]$/.test(key) && store.get().classes.some((c) => c.id === Number(key))) store.set({ classId: Number(key) });
  });
}
