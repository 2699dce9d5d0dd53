// The dataset viewer page: an XY view with XZ and YZ views beside it, a slice slider and keys,
// zoom and pan, brightness and contrast, overlay layers with opacity and per-class colours, the
// voxel under the cursor, the objects of a segmentation split into objects, the annotation editor, and buttons that start segmentation and
// fine-tuning jobs. This module only starts the page: it reads the dataset, puts the page's
// state into one store (viewer_store.js), and hands the store to each panel, which reads and
// changes the state through it. Everything that polls registers with the page's one loop.
import { $, enc, getJSON } from "./common.js";
import { createStore } from "./viewer_store.js";
import { layerKey, mergeLayers, newLayer, painted, setClasses } from "./viewer_layers.js";
import { bindNavigation, createViews, setSlice } from "./viewer_views.js";
import { bindContrast } from "./contrast_panel.js";
import { bindLayersPanel } from "./layers_panel.js";
import { ObjectsPanel } from "./objects_panel.js";
import { bindAnnotatePanel, createEditor } from "./annotate_panel.js";
import { AnnotationChoice } from "./annotation_choice.js";
import { ItemActions } from "./item_actions.js";
import { bindBetweenSlices } from "./between_slices.js";
import { bindRunPanel, showError } from "./run_panel.js";
import { LiveTraining } from "./live_training.js";
import { SetupPanel } from "./setup_panel.js";
import { watchCatalog } from "./layer_watch.js";
import { rememberViewer, restoredState } from "./viewer_state.js";

const root = $("viewer");

// The layers the page starts with, with what this browser (or the address) remembers of them.
function firstLayers(doc, saved, context) {
  return doc.layers.map((l) => {
    const layer = newLayer(l, l.kind === "raw" || saved.shown.has(layerKey(l)), context);
    const kept = saved.layers[layerKey(layer)];
    if (!kept) return layer;
    const colours = new Map(layer.colours);
    for (const [id, colour] of Object.entries(kept.colours || {})) colours.set(Number(id), colour);
    const opacity = typeof kept.opacity === "number" ? kept.opacity : layer.opacity;
    return painted({ ...layer, opacity, colours }, context.classes);
  });
}

function firstState(dataset, doc, models, project, saved) {
  const context = { classes: doc.classes, fingerprint: doc.fingerprint };
  return {
    dataset, shape: doc.shape, classes: doc.classes, fingerprint: doc.fingerprint,
    layers: firstLayers(doc, saved, context),
    cursor: [0, Math.floor(doc.shape[1] / 2), Math.floor(doc.shape[2] / 2)],
    editing: null,
    objectsOf: null,  // the segmentation whose objects the Objects panel lists
    tool: saved.tool || "pan",  // a drag pans until the person picks a painting tool
    brush: saved.brush || Number($("brush-size").value),
    classId: (doc.classes.find((c) => c.id !== 0) || doc.classes[0]).id,
    window: saved.window || [Number($("window-low").value), Number($("window-high").value)],
    zoom: saved.view && saved.view.scale ? saved.view : null,
    models, defaultModel: (project && project.default_model) || null,
  };
}

async function start() {
  const dataset = root.dataset.dataset;
  const doc = await getJSON(`/datasets/${enc(dataset)}`);
  const [models, projects] = await Promise.all([getJSON("/models"), getJSON("/projects")]);
  if (!doc.shape || !doc.pyramid) {
    throw new Error(`dataset ${dataset} cannot be shown: it is ${doc.state}` + (doc.error ? ` (${doc.error})` : ""));
  }
  const saved = restoredState(dataset);
  const store = createStore(firstState(dataset, doc, models, projects.find((p) => p.name === doc.project), saved));
  const views = createViews(store, doc);
  const onCatalog = (changed) => {
    for (const old of mergeLayers(store, changed)) for (const view of Object.values(views)) view.forgetLayer(old);
  };
  let choice = null;
  const editor = createEditor(store, views, { needAnnotation: () => choice.askForOne() });
  choice = new AnnotationChoice({ store, editor, showError, onCatalog });

  bindNavigation(store, views);
  bindContrast(store, views, { showError });
  const actions = new ItemActions({ store, editor, choose: (name) => choice.choose(name), onCatalog, showError });
  bindLayersPanel(store, actions);
  const objects = new ObjectsPanel(store, views);
  objects.bind();
  bindAnnotatePanel(store, views, editor, { showError });
  choice.bind();
  bindBetweenSlices(store, editor);
  bindRunPanel(store);
  const live = new LiveTraining(store, { flushEditor: () => editor.flush() });
  rememberViewer(store);

  setSlice(store, Number(saved.z || 0));
  if (saved.annotation && doc.layers.some((l) => l.kind === "annotation" && l.name === saved.annotation)) {
    await choice.choose(saved.annotation);
  }
  const setup = new SetupPanel({ root: $("setup-panel"), dataset, onSaved: async () => {
    const changed = await getJSON(`/datasets/${enc(dataset)}`);
    setClasses(store, changed.classes);
    const { classes, classId } = store.get();
    if (!classes.some((c) => c.id === classId)) store.set({ classId: (classes.find((c) => c.id !== 0) || classes[0]).id });
    onCatalog(changed);
  } });
  setup.bind();
  watchCatalog({ dataset, since: { layers: doc.layers, models },
    onDataset: onCatalog, onModels: (changed) => store.set({ models: changed }) });
  live.bind();
  await actions.showTrash();
  root.dataset.ready = "true";
  // for people poking at it from the console (and the tests)
  window.biosegmentViewer = { store, views, editor, live, setup, objects, get layers() { return store.get().layers; } };
}

start().catch((error) => { showError(error); root.dataset.ready = "error"; });
