// Which annotation the viewer edits: the annotation picker and "New annotation" (named from the
// name field, or from the time when it is empty). Painting with no annotation chosen creates
// nothing: it asks for one, next to the picker. The choice is the store's `editing`; the
// annotation's layer is shown while it is edited, and the undo history painted in this tab
// comes back with it. The last choice per dataset is remembered by viewer_state.js.
import { $, el, enc, getJSON, sendJSON } from "./common.js";
import { annotationNames, layerKey, updateLayer } from "./viewer_layers.js";
import { restoredUndo } from "./viewer_state.js";

function fillAnnotationSelect(names, chosen) {
  $("annotation-select").replaceChildren(el("option", { value: "" }, "(no annotation)"),
    ...names.map((n) => el("option", { value: n, title: n }, n)));
  $("annotation-select").value = chosen || "";
}

function datedName() {
  const now = new Date(), two = (n) => String(n).padStart(2, "0");
  return `annotation-${now.getFullYear()}${two(now.getMonth() + 1)}${two(now.getDate())}-` +
    `${two(now.getHours())}${two(now.getMinutes())}${two(now.getSeconds())}`;
}

// ctx: { store, editor, showError(error), onCatalog(doc) (the dataset document changed) }
export class AnnotationChoice {
  constructor(ctx) { Object.assign(this, ctx); }

  get dataset() { return this.store.get().dataset; }

  async choose(name) {
    const editing = name || null;
    await this.editor.open(editing, this.store.get().cursor[0]);
    if (editing && this.editor.history.size === 0) this.editor.history = restoredUndo(this.dataset, editing);
    this.store.set({ editing });
    if (editing) updateLayer(this.store, layerKey({ kind: "annotation", name: editing }), { visible: true });
  }

  async create() {
    const name = $("annotation-name").value.trim() || datedName();
    try {
      await sendJSON("POST", `/datasets/${enc(this.dataset)}/annotations`, { name });
      this.onCatalog(await getJSON(`/datasets/${enc(this.dataset)}`));
      $("annotation-name").value = "";
      await this.choose(name);
      this.showError("");
    } catch (error) { this.showError(error); }
  }

  // For the editor: someone painted with no annotation chosen. Nothing is painted or created;
  // the picker and the name field say what is needed.
  askForOne() {
    $("annotation-needed").hidden = false;
    $("annotate").classList.add("needs-annotation");
    $("annotate").scrollIntoView({ block: "nearest" });
    // after the pointer's own default, which would take the focus back to the page
    setTimeout(() => $("annotation-name").focus(), 0);
  }

  bind() {
    this.store.subscribe((s) => JSON.stringify([annotationNames(s.layers), s.editing]), () => {
      const { layers, editing } = this.store.get();
      fillAnnotationSelect(annotationNames(layers), editing);
    });
    this.store.subscribe((s) => s.editing, (editing) => {
      if (!editing) return;
      $("annotation-needed").hidden = true;
      $("annotate").classList.remove("needs-annotation");
    });
    fillAnnotationSelect(annotationNames(this.store.get().layers), this.store.get().editing);
    $("annotation-select").addEventListener("change", (e) => this.choose(e.target.value).catch(this.showError));
    $("annotation-create").onclick = () => this.create();
    $("annotation-name").addEventListener("keydown", (e) => { if (e.key === "Enter") this.create(); });
  }
}
