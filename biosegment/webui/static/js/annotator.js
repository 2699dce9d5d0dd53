// The annotation editor: paints class ids into one slice at full resolution, with brush,
// eraser, flood fill and "take this object" chosen from a dispatch table, undo and redo per slice, and autosave of
// the slice to the sparse per-slice format (255 = not painted) shortly after every change.
import { fillRegion } from "./fill.js";
import { UNPAINTED, fetchSlice, sliceUrl, upload } from "./annotation_slices.js";

const SAVE_DELAY_MS = 400;

// Tools: each handles down/move/up on plane coordinates (fractional row, col).
const TOOLS = {
  pan: null,
  brush: {
    down(editor, at) { editor.stamp(at, editor.classId); editor.last = at; },
    move(editor, at) { editor.line(editor.last, at, editor.classId); editor.last = at; },
  },
  eraser: {
    down(editor, at) { editor.stamp(at, UNPAINTED); editor.last = at; },
    move(editor, at) { editor.line(editor.last, at, UNPAINTED); editor.last = at; },
  },
  fill: {
    down() {},  // fills run on their own (they may need the image first): see fillAt
    move() {},
  },
  object: {
    down() {},  // the object comes from the server: see fillAt
    move() {},
  },
};

// Fills whose region the server computes (see fill_regions.py): the tool or fill mode, and the
// region's mode there.
function serverMode(tool, fillMode) {
  if (tool === "object") return "object";
  return fillMode === "edges" ? "edges" : null;
}

export class AnnotationEditor {
  // Options besides the slice size: needAnnotation() is called when someone paints while no
  // annotation is chosen (nothing is painted: the page asks which annotation to paint into);
  // fillBounds() -> [r0, c0, r1, c1], the part of the slice on screen; fillGrey(bounds) ->
  // Promise<Uint8Array>; fetchRegion({mode, z, y, x, bounds}) -> Promise<{runs, pixels, ...}>,
  // the region the server computes; onFillMessage(text) says what a fill did.
  constructor({ dataset, height, width, onChange, onSaveState, needAnnotation = null,
    fillBounds = null, fillGrey = null, fetchRegion = null, onFillMessage = () => {} }) {
    Object.assign(this, { dataset, height, width, onChange, onSaveState, needAnnotation,
      fillBounds, fillGrey, fetchRegion, onFillMessage });
    this.fillMode = "edges"; this.fillTolerance = 12;
    this.canvas = document.createElement("canvas");
    this.canvas.width = width; this.canvas.height = height;
    this.ctx = this.canvas.getContext("2d");
    this.image = this.ctx.createImageData(width, height);
    this.labels = new Uint8Array(width * height).fill(UNPAINTED);
    this.palette = new Uint8ClampedArray(256 * 4);
    this.tool = "pan"; this.classId = 1; this.brushSize = 8;
    this.name = null; this.z = null;
    this.history = new Map();   // z -> {undo: [], redo: []}
    this.stroke = null;
    this.saveTimer = null; this.saving = Promise.resolve(); this.dirty = false;
  }

  get active() { return this.name !== null; }

  setPalette(palette) { this.palette = palette; this.render(0, 0, this.width, this.height); }

  async open(name, z) {
    await this.flush();
    if (name !== this.name) this.history = new Map();  // undo belongs to one annotation
    this.name = name; this.z = null;
    if (name !== null) await this.load(z);
  }

  async load(z) {
    await this.flush();
    if (this.name === null) return;
    this.z = z;
    const bytes = await fetchSlice(this.dataset, this.name, z);
    if (this.z !== z) return;  // the person moved on while this slice loaded
    this.labels.set(bytes);
    this.render(0, 0, this.width, this.height);
  }

  slot() {
    if (!this.history.has(this.z)) this.history.set(this.z, { undo: [], redo: [] });
    return this.history.get(this.z);
  }

  // -- pointer ------------------------------------------------------------------------------

  // A painting tool takes the pointer (a drag paints, it never pans); with no annotation chosen
  // it only asks for one.
  wants() {
    if (TOOLS[this.tool] === null) return false;
    return this.active ? this.z !== null : Boolean(this.needAnnotation);
  }

  down(at) {
    if (!this.active) { this.needAnnotation(); return; }
    if (this.tool === "fill" || this.tool === "object") { this.pendingFill = this.fillAt(at, this.classId); return; }
    this.stroke = { indices: [], before: [], seen: new Set() };
    this.box = null;
    TOOLS[this.tool].down(this, at);
    this.flushRender();
  }

  move(at) {
    if (!this.stroke) return;
    TOOLS[this.tool].move(this, at);
    this.flushRender();
  }

  up() {
    const stroke = this.stroke;
    this.stroke = null;
    if (!stroke || stroke.indices.length === 0) return;
    const indices = Int32Array.from(stroke.indices);
    const before = Uint8Array.from(stroke.before);
    const after = indices.map((i) => this.labels[i]);
    this.slot().undo.push({ indices, before, after: Uint8Array.from(after) });
    this.slot().redo.length = 0;
    this.changed();
  }

  // -- painting primitives -------------------------------------------------------------------

  set(index, value) {
    if (this.labels[index] === value) return;
    if (!this.stroke.seen.has(index)) {
      this.stroke.seen.add(index);
      this.stroke.indices.push(index);
      this.stroke.before.push(this.labels[index]);
    }
    this.labels[index] = value;
  }

  grow(r0, c0, r1, c1) {
    const b = this.box;
    this.box = b ? [Math.min(b[0], r0), Math.min(b[1], c0), Math.max(b[2], r1), Math.max(b[3], c1)]
      : [r0, c0, r1, c1];
  }

  stamp([row, col], value) {
    const radius = this.brushSize / 2;
    const r0 = Math.max(0, Math.floor(row - radius)), r1 = Math.min(this.height - 1, Math.ceil(row + radius));
    const c0 = Math.max(0, Math.floor(col - radius)), c1 = Math.min(this.width - 1, Math.ceil(col + radius));
    const limit = radius * radius;
    for (let r = r0; r <= r1; r++) {
      for (let c = c0; c <= c1; c++) {
        const dr = r + 0.5 - row, dc = c + 0.5 - col;
        if (dr * dr + dc * dc <= limit) this.set(r * this.width + c, value);
      }
    }
    if (r0 <= r1 && c0 <= c1) this.grow(r0, c0, r1, c1);
  }

  line(from, to, value) {
    const distance = Math.hypot(to[0] - from[0], to[1] - from[1]);
    const steps = Math.max(1, Math.ceil(distance / Math.max(0.5, this.brushSize / 4)));
    for (let i = 1; i <= steps; i++) {
      const t = i / steps;
      this.stamp([from[0] + (to[0] - from[0]) * t, from[1] + (to[1] - from[1]) * t], value);
    }
  }

  // Fill from `at`. The object tool and the "edges" fill ask the server for the region (see
  // fillFromServer); otherwise see fill.js: in "image" mode the region also keeps to grey
  // levels near the clicked one; either way it stays on the part of the slice that is on screen.
  async fillAt([row, col], value) {
    const r = Math.floor(row), c = Math.floor(col);
    if (r < 0 || c < 0 || r >= this.height || c >= this.width) return;
    const z = this.z;
    const bounds = this.fillBounds ? this.fillBounds() : [0, 0, this.height - 1, this.width - 1];
    const mode = serverMode(this.tool, this.fillMode);
    if (mode && this.fetchRegion) { await this.fillFromServer(mode, [r, c], value, bounds); return; }
    let grey = null;
    if (this.fillMode === "image" && this.fillGrey) {
      try { grey = await this.fillGrey(bounds); } catch (error) { this.onSaveState("error", error.message); return; }
    }
    if (this.z !== z || !this.active) return;  // the person moved on meanwhile
    const region = fillRegion({ labels: this.labels, width: this.width, seed: [r, c], bounds, grey,
      tolerance: this.fillTolerance });
    this.stroke = { indices: [], before: [], seen: new Set() };
    this.box = null;
    for (const index of region) this.set(index, value);
    if (region.length) this.grow(bounds[0], bounds[1], bounds[2], bounds[3]);
    this.flushRender();
    this.up();
    this.lastFill = { size: region.length, bounds };
  }

  // The region the server answers for a click, painted into the pixels nothing was painted in
  // yet (what a person painted is kept: erase it first to replace it), as one undoable stroke.
  async fillFromServer(mode, [r, c], value, bounds) {
    const z = this.z;
    let answer;
    this.onFillMessage(mode === "object" ? "taking the object …" : "finding the region …");
    try {
      answer = await this.fetchRegion({ mode, z, y: r, x: c, bounds });
    } catch (error) { this.onFillMessage(`nothing filled: ${error.message}`); return; }
    if (this.z !== z || !this.active) return;  // the person moved on meanwhile
    this.stroke = { indices: [], before: [], seen: new Set() };
    this.box = null;
    const runs = answer.runs;
    let kept = 0;
    for (let k = 0; k < runs.length; k += 2) {
      for (let i = runs[k]; i < runs[k] + runs[k + 1]; i++) {
        if (this.labels[i] === UNPAINTED) this.set(i, value); else if (this.labels[i] !== value) kept++;
      }
    }
    const painted = this.stroke.indices.length;
    if (painted) this.render(0, 0, this.width, this.height);
    if (this.onChange) this.onChange();
    this.up();
    this.lastFill = { size: painted, bounds, mode };
    const what = mode === "object" ? `the class-${answer.class_id} object of ${answer.source}` : "the region within the edges";
    this.onFillMessage(`filled ${painted} pixels of ${what}` + (kept ? ` (${kept} painted pixels kept)` : ""));
  }

  // Labels from elsewhere (another slice) into the unpainted pixels of this one, as one stroke.
  applyLabels(source) {
    if (!this.active || this.z === null) return 0;
    this.stroke = { indices: [], before: [], seen: new Set() };
    for (let i = 0; i < source.length; i++) {
      if (this.labels[i] === UNPAINTED && source[i] !== UNPAINTED) this.set(i, source[i]);
    }
    const count = this.stroke.indices.length;
    this.render(0, 0, this.width, this.height);
    this.up();
    return count;
  }

  // -- undo and redo -------------------------------------------------------------------------

  undo() { this.replay("undo", "redo", "before"); }
  redo() { this.replay("redo", "undo", "after"); }

  replay(from, to, values) {
    if (!this.active || this.z === null) return;
    const entry = this.slot()[from].pop();
    if (!entry) return;
    entry.indices.forEach((index, i) => { this.labels[index] = entry[values][i]; });
    this.slot()[to].push(entry);
    this.render(0, 0, this.width, this.height);
    this.changed();
  }

  canUndo() { return this.active && this.z !== null && this.slot().undo.length > 0; }
  canRedo() { return this.active && this.z !== null && this.slot().redo.length > 0; }

  // -- drawing and saving --------------------------------------------------------------------

  flushRender() {
    if (!this.box) return;
    const [r0, c0, r1, c1] = this.box;
    this.render(r0, c0, r1 - r0 + 1, c1 - c0 + 1);
    this.box = null;
    if (this.onChange) this.onChange();
  }

  render(r0, c0, height, width) {
    const data = this.image.data, labels = this.labels, palette = this.palette;
    for (let r = r0; r < r0 + height; r++) {
      for (let c = c0; c < c0 + width; c++) {
        const i = r * this.width + c, o = i * 4, p = labels[i] * 4;
        data[o] = palette[p]; data[o + 1] = palette[p + 1];
        data[o + 2] = palette[p + 2]; data[o + 3] = palette[p + 3];
      }
    }
    this.ctx.putImageData(this.image, 0, 0, c0, r0, width, height);
  }

  changed() {
    this.dirty = true;
    this.onSaveState("pending");
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => this.save(), SAVE_DELAY_MS);
    if (this.onChange) this.onChange();
  }

  save() {
    clearTimeout(this.saveTimer);
    this.saveTimer = null;
    if (!this.dirty || this.name === null || this.z === null) return this.saving;
    this.dirty = false;
    const body = this.labels.slice();
    const url = sliceUrl(this.dataset, this.name, this.z);
    this.onSaveState("saving");
    this.saving = this.saving.then(() => upload(url, body)).then(
      () => { if (!this.dirty) this.onSaveState("saved"); },
      (error) => { this.dirty = true; this.onSaveState("error", error.message); });
    return this.saving;
  }

  // Save now whatever is pending (before changing slice or annotation, or leaving the page).
  flush() { return this.save(); }
}
