// Which annotation the viewer edits: the annotation picker and "Create", and the annotation made
// for a stroke painted while none was chosen (named from the name field, or from the time). The
// choice is the store's `editing`; the undo history painted in this tab comes back with it.
import { $, el, enc, getJSON, sendJSON } from "./common.js";
import { annotationNames } from "./viewer_layers.js";
import { restoredUndo } from "./viewer_state.js";

function fillAnnotationSelect(names, chosen) {
  $("annotation-select").replaceChildren(el("option", { value: "" }, "(no annotation)"),
    ...names.map((n) => el("option", { value: n }, n)));
  $("annotation-select").value = chosen || "";
}

function newAnnotationName() {
  const typed = $("annotation-name").value.trim();
  if (typed) return typed;
  const now = new Date(), two = (n) => String(n).padStart(2, "0");
  return `annotation-${now.getFullYear()}${two(now.getMonth() + 1)}${two(now.getDate())}-` +
    `${two(now.getHours())}${two(now.getMinutes())}${two(now.getSeconds())}`;
}

// ctx: { store, views, editor, showError(error), onCatalog(doc) (the dataset document changed) }
export class AnnotationChoice {
  constructor(ctx) { Object.assign(this, ctx); }

  get dataset() { return this.store.get().dataset; }

  async choose(name) {
    const editing = name || null;
    await this.editor.open(editing, this.store.get().cursor[0]);
    if (editing && this.editor.history.size === 0) this.editor.history = restoredUndo(this.dataset, editing);
    this.store.set({ editing });
  }

  async create() {
    const name = $("annotation-name").value.trim();
    try {
      await sendJSON("POST", `/datasets/${enc(this.dataset)}/annotations`, { name });
      this.onCatalog(await getJSON(`/datasets/${enc(this.dataset)}`));
      $("annotation-name").value = "";
      await this.choose(name);
      this.showError("");
    } catch (error) { this.showError(error); }
  }

  // For the editor: a stroke was painted with no annotation chosen.
  async createForStroke() {
    const name = newAnnotationName();
    this.views.z.editorCanvas = this.editor.canvas;  // show the stroke while the annotation is made
    try {
      await sendJSON("POST", `/datasets/${enc(this.dataset)}/annotations`, { name });
    } catch (error) {
      this.views.z.editorCanvas = null;
      this.showError(`painting needs an annotation, and none could be created: ${error.message || error}`);
      throw error;
    }
    const doc = await getJSON(`/datasets/${enc(this.dataset)}`);
    this.store.set({ editing: name });
    this.onCatalog(doc);
    $("annotation-name").value = "";
    $("run-message").textContent = `Created the annotation ${name} for your strokes.`;
    return name;
  }

  bind() {
    this.store.subscribe((s) => JSON.stringify([annotationNames(s.layers), s.editing]), () => {
      const { layers, editing } = this.store.get();
      fillAnnotationSelect(annotationNames(layers), editing);
    });
    fillAnnotationSelect(annotationNames(this.store.get().layers), this.store.get().editing);
    $("annotation-select").addEventListener("change", (e) => this.choose(e.target.value).catch(this.showError));
    $("annotation-create").onclick = () => this.create();
  }
}
