// Rename and delete an annotation or a segmentation from the viewer's layers panel, and the
// viewer's "Trash" list, which brings back what was deleted from this dataset. Deleting moves
// the files to the data folder's trash (nothing is lost); the server refuses, with the reason,
// what a queued or running job uses. Every change reloads the dataset's layers at once, so the
// panel, the annotation picker and the views agree without waiting for the next poll.
import { $, API, el, enc, getJSON, sendJSON } from "./common.js";

async function send(method, path) {
  const response = await fetch(API + path, { method, headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error((body && body.error) || `HTTP ${response.status}`);
  return body;
}

function itemPath(dataset, layer) {
  const plural = layer.kind === "annotation" ? "annotations" : "segmentations";
  return `/datasets/${enc(dataset)}/${plural}/${enc(layer.name)}`;
}

function described(entry) {
  const item = entry.item || {};
  return item.kind ? `${item.kind} ${item.name}` : entry.moved.join(", ");
}

// ctx: { store, editor, choose(name) (the annotation to edit), onCatalog(doc), showError(error) }
export class ItemActions {
  constructor(ctx) { Object.assign(this, ctx); }

  get dataset() { return this.store.get().dataset; }

  async reload() {
    this.onCatalog(await getJSON(`/datasets/${enc(this.dataset)}`));
    await this.showTrash();
  }

  // Buttons for a layer of the layers panel (annotations and segmentations only).
  buttons(layer) {
    if (layer.kind !== "annotation" && layer.kind !== "segmentation") return null;
    const what = `${layer.kind} ${layer.name}`;
    return el("span", { class: "item-actions" },
      el("button", { type: "button", class: "small", title: `rename the ${what}`,
        dataset: { action: "rename" }, onclick: () => this.rename(layer).catch(this.showError) }, "Rename"),
      el("button", { type: "button", class: "small", title: `move the ${what} to the trash`,
        dataset: { action: "delete" }, onclick: () => this.remove(layer).catch(this.showError) }, "Delete"));
  }

  async rename(layer) {
    const name = window.prompt(`New name of the ${layer.kind} ${layer.name}:`, layer.name);
    if (!name || name === layer.name) return;
    const editing = layer.kind === "annotation" && this.store.get().editing === layer.name;
    if (editing) { await this.editor.flush(); await this.choose(null); }
    try {
      await sendJSON("POST", `${itemPath(this.dataset, layer)}/rename`, { name });
    } catch (error) {
      if (editing) await this.choose(layer.name);
      throw error;
    }
    await this.reload();
    if (editing) await this.choose(name);
    this.showError(`Renamed the ${layer.kind} ${layer.name} to ${name}.`);
  }

  async remove(layer) {
    const what = `${layer.kind} ${layer.name}`;
    if (!window.confirm(`Move the ${what} to the trash? You can restore it from the Trash list.`)) return;
    const editing = layer.kind === "annotation" && this.store.get().editing === layer.name;
    if (editing) { await this.editor.flush(); await this.choose(null); }
    await send("DELETE", itemPath(this.dataset, layer));
    await this.reload();
    this.showError(`Moved the ${what} to the trash.`);
  }

  async restore(entry) {
    await send("POST", `/trash/${enc(entry.id)}/restore`);
    await this.reload();
    this.showError(`Restored the ${described(entry)}.`);
  }

  // The trash entries of this dataset, newest first, each with a Restore button.
  async showTrash() {
    const entries = (await getJSON("/trash")).filter((e) => e.item && e.item.dataset === this.dataset);
    $("trash-list").replaceChildren(...(entries.length ? entries.map((entry) =>
      el("div", { class: "row trash-entry", dataset: { entry: entry.id } },
        el("span", {}, described(entry)),
        el("button", { type: "button", class: "small", title: `move it back (${entry.location})`,
          onclick: () => this.restore(entry).catch(this.showError) }, "Restore")))
      : [el("span", { class: "muted" }, "nothing deleted from this dataset")]));
  }
}
