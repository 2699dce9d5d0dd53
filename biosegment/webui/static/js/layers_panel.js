// The viewer's "Layers" panel: per layer a visibility box and, for label layers, its opacity and
// per class a visibility box and a colour; a difference layer adds its scores against ground
// truth (and its objects' scores, where the segmentation was split into objects), and a segmentation links to its label volume as a file (TIFF, or OME-Zarr zipped);
// annotations and segmentations get Rename and Delete buttons (item_actions.js). The
// panel changes layers only through the store; it is drawn again when the list of layers (or the
// classes) changes, not when a value it shows itself changes, and its visibility boxes follow the
// store when another panel shows or hides a layer.
import { $, API, el, enc, getJSON } from "./common.js";
import { layerClasses } from "./colours.js";
import { layerKey, updateLayer } from "./viewer_layers.js";
import { objectScoreLines } from "./object_scores.js";

const scores = new Map();  // "name@version" -> the scores request, made once per version

// The scores of a segmentation against ground truth.
function scoresLine(dataset, layer) {
  const line = el("div", { class: "scores muted", dataset: { scores: layer.name } }, "scores: …");
  const key = `${layer.name}@${layer.version}`;
  if (!scores.has(key)) scores.set(key, getJSON(`/datasets/${enc(dataset)}/segmentations/${enc(layer.name)}/scores`));
  scores.get(key).then((s) => {
    const parts = Object.entries(s.iou).filter(([name]) => name !== "background")
      .map(([name, iou]) => `${name}: IoU ${iou === null ? "-" : iou.toFixed(3)}, Dice ${s.dice[name] === null ? "-" : s.dice[name].toFixed(3)}`);
    line.textContent = `${parts.join("; ")} · false positives ${s.false_positives} · false negatives ${s.false_negatives}`;
    for (const text of objectScoreLines(s.objects)) line.append(el("div", { class: "object-scores" }, text));
    line.dataset.ready = "true";
  }, (error) => { line.textContent = `scores: ${error.message}`; });
  return line;
}

// The segmentation's label volume to take away, in the format it is stored in or converted.
function downloadLinks(dataset, layer) {
  const base = `${API}/datasets/${enc(dataset)}/segmentations/${enc(layer.name)}/download`;
  return el("div", { class: "row downloads" },
    el("a", { href: `${base}/tiff`, download: "", dataset: { format: "tiff" } }, "Download TIFF"),
    el("a", { href: `${base}/ome-zarr`, download: "", dataset: { format: "ome-zarr" } }, "Download OME-Zarr (zip)"));
}

function classControls(store, layer) {
  const key = layerKey(layer);
  const current = () => store.get().layers.find((l) => layerKey(l) === key);
  const classes = el("div", { class: "classes" });
  for (const c of layerClasses(layer, store.get().classes)) {
    if (c.id === 0 && layer.kind !== "annotation") continue;
    const shown = el("input", { type: "checkbox", title: `show ${c.name}`, onchange: (e) => {
      const hidden = new Set(current().hiddenClasses);
      if (e.target.checked) hidden.delete(c.id); else hidden.add(c.id);
      updateLayer(store, key, { hiddenClasses: hidden });
    } });
    shown.checked = !layer.hiddenClasses.has(c.id);
    const colour = el("input", { type: "color", value: layer.colours.get(c.id) || c.color, title: `colour of ${c.name}`,
      dataset: { classId: String(c.id) },
      oninput: (e) => updateLayer(store, key, { colours: new Map(current().colours).set(c.id, e.target.value) }) });
    classes.append(el("span", { class: "swatch" }, shown, colour, c.name));
  }
  return classes;
}

function layerControls(store, layer, actions) {
  const key = layerKey(layer);
  const visible = el("input", { type: "checkbox", id: `layer-${key}-visible`,
    onchange: (e) => updateLayer(store, key, { visible: e.target.checked }) });
  visible.checked = layer.visible;
  const box = el("div", { class: "layer", dataset: { layer: key } },
    el("div", { class: "row" }, el("label", { class: "layer-name" }, visible, el("span", {}, layer.label)),
      actions && actions.buttons(layer)));
  if (layer.kind === "raw") return box;
  const opacity = el("input", { type: "range", min: "0", max: "100", value: String(layer.opacity * 100),
    title: "opacity", oninput: (e) => updateLayer(store, key, { opacity: e.target.value / 100 }) });
  box.append(el("div", { class: "row" }, el("label", {}, "opacity"), opacity), classControls(store, layer));
  if (layer.kind === "difference") box.append(scoresLine(store.get().dataset, layer));
  if (layer.kind === "segmentation" && (layer.state || "ok") === "ok") box.append(downloadLinks(store.get().dataset, layer));
  return box;
}

// What the panel shows that it does not change itself: the layers, their labels and classes.
function outline(state) {
  return JSON.stringify([state.classes, state.layers.map((l) =>
    [layerKey(l), l.label, l.kind === "difference" ? l.version : ""])]);
}

// Which layers are shown: another panel may show one (choosing an annotation to edit shows it).
function visibility(state) {
  return state.layers.map((l) => `${layerKey(l)}=${l.visible}`).join("\n");
}

// actions: the ItemActions that rename and delete annotations and segmentations (optional)
export function bindLayersPanel(store, actions = null) {
  const render = () => $("layers").replaceChildren(...store.get().layers.map((l) => layerControls(store, l, actions)));
  store.subscribe(outline, render);
  store.subscribe(visibility, () => {
    for (const layer of store.get().layers) {
      const box = document.getElementById(`layer-${layerKey(layer)}-visible`);
      if (box) box.checked = layer.visible;
    }
  });
  render();
}
