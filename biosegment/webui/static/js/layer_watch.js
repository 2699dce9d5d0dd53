// Keep an open page up to date with the catalog: every few seconds (a task of the page's one
// polling loop) ask for the dataset (its layers: new segmentations and annotations) and the
// models, and hand whatever changed to the page. A failed poll (the daemon restarting) is tried
// again at the next turn.
import { getJSON, enc } from "./common.js";
import { every } from "./poller.js";

export const WATCH_INTERVAL_MS = 2500;

// `since` holds the layers and models the page started with, so nothing between is missed.
export function watchCatalog({ dataset, since, onDataset, onModels, intervalMs = WATCH_INTERVAL_MS }) {
  let lastDataset = JSON.stringify(since.layers), lastModels = JSON.stringify(since.models);
  return every(intervalMs, async () => {
    const [doc, models] = await Promise.all([getJSON(`/datasets/${enc(dataset)}`), getJSON("/models")]);
    const docText = JSON.stringify(doc.layers), modelsText = JSON.stringify(models);
    if (docText !== lastDataset) onDataset(doc);
    if (modelsText !== lastModels) onModels(models);
    lastDataset = docText; lastModels = modelsText;
  }, { now: false });
}
