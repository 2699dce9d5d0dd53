// What the viewer remembers across a reload: the slice, the annotation and the layers shown go
// into the address (so a link shows the same thing), and, per dataset in local storage, the
// zoom and pan, the brush, the tool and each layer's visibility, opacity and colours. The undo
// history of the strokes painted in this browser tab lives in session storage, so a reload
// keeps it and closing the tab forgets it. `rememberViewer` keeps the remembered state in step
// with the page's store.

const STATE_PREFIX = "biosegment.viewer.";
const UNDO_PREFIX = "biosegment.undo.";
const MAX_UNDO_CHARS = 4_000_000;  // session storage holds about 5 MB per site

function readJSON(storage, key) {
  try { return JSON.parse(storage.getItem(key) || "null"); } catch (_) { return null; }
}

function writeJSON(storage, key, value) {
  try { storage.setItem(key, JSON.stringify(value)); return true; } catch (_) { return false; }
}

// The state to start from: the address wins over what this browser remembers.
export function restoredState(dataset) {
  const saved = readJSON(localStorage, STATE_PREFIX + dataset) || {};
  const params = new URLSearchParams(location.search);
  const state = { ...saved, layers: saved.layers || {} };
  if (params.has("z")) state.z = Number(params.get("z")) || 0;
  if (params.has("annotation")) state.annotation = params.get("annotation");
  const shown = params.getAll("show");
  if (shown.length) {
    state.shown = new Set(shown);
  } else {
    state.shown = new Set(Object.entries(state.layers).filter(([, l]) => l.visible).map(([key]) => key));
  }
  return state;
}

export function rememberState(dataset, state) {
  writeJSON(localStorage, STATE_PREFIX + dataset, state);
  const params = new URLSearchParams();
  params.set("z", String(state.z || 0));
  if (state.annotation) params.set("annotation", state.annotation);
  for (const [key, layer] of Object.entries(state.layers || {})) {
    if (layer.visible && key !== "raw") params.append("show", key);
  }
  history.replaceState(history.state, "", `${location.pathname}?${params}`);
}

// What of the store's state is remembered: layers by their key (kind:name).
function remembered(state) {
  const layers = {};
  for (const l of state.layers) {
    const key = l.name ? `${l.kind}:${l.name}` : l.kind;
    layers[key] = { visible: l.visible, opacity: l.opacity, colours: Object.fromEntries(l.colours) };
  }
  return { z: state.cursor[0], annotation: state.editing || "", brush: state.brush, tool: state.tool,
    window: state.window, view: state.zoom, layers };
}

// Remember the viewer's state shortly after each change of what is remembered.
export function rememberViewer(store) {
  let timer = null;
  store.subscribe((state) => JSON.stringify(remembered(state)), (text) => {
    clearTimeout(timer);
    timer = setTimeout(() => rememberState(store.get().dataset, JSON.parse(text)), 150);
  });
}

// -- the undo history --------------------------------------------------------------------------

function toBase64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function fromBase64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

const packEntry = (e) => ({ i: toBase64(new Uint8Array(e.indices.buffer, e.indices.byteOffset, e.indices.byteLength)),
  b: toBase64(e.before), a: toBase64(e.after) });
const unpackEntry = (e) => {
  const indexBytes = fromBase64(e.i);
  return { indices: new Int32Array(indexBytes.buffer, 0, indexBytes.length / 4), before: fromBase64(e.b), after: fromBase64(e.a) };
};

// Keep `history` (z -> {undo, redo}) of one annotation; the oldest strokes go first when full.
export function rememberUndo(dataset, annotation, history) {
  const slices = {};
  for (const [z, slot] of history) slices[z] = { undo: slot.undo.map(packEntry), redo: slot.redo.map(packEntry) };
  let text = JSON.stringify(slices);
  while (text.length > MAX_UNDO_CHARS) {
    const longest = Object.values(slices).sort((p, q) => q.undo.length - p.undo.length)[0];
    if (!longest || longest.undo.length === 0) return;
    longest.undo.shift();
    text = JSON.stringify(slices);
  }
  try { sessionStorage.setItem(`${UNDO_PREFIX}${dataset}/${annotation}`, text); } catch (_) { /* full */ }
}

export function restoredUndo(dataset, annotation) {
  const slices = readJSON(sessionStorage, `${UNDO_PREFIX}${dataset}/${annotation}`);
  const history = new Map();
  if (!slices) return history;
  for (const [z, slot] of Object.entries(slices)) {
    history.set(Number(z), { undo: slot.undo.map(unpackEntry), redo: slot.redo.map(unpackEntry) });
  }
  return history;
}
