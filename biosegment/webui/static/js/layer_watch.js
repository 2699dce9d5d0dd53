// Keep an open page up to date with the catalog: every few seconds ask for the dataset (its
// layers: new segmentations and annotations) and the models, and hand whatever changed to the
// page. A failed poll (the daemon restarting) is tried again at the next tick.
import { getJSON } from "./common.js";

export const WATCH_INTERVAL_MS = 2500;

// `since` holds the layers and models the page started with, so nothing between is missed.
export function watchCatalog({ dataset, since, onDataset, onModels, intervalMs = WATCH_INTERVAL_MS }) {
  let lastDataset = JSON.stringify(since.layers), lastModels = JSON.stringify(since.models);
  let stopped = false, timer = null;
  async function tick() {
    try {
      const [doc, models] = await Promise.all([
        getJSON(`/datasets/${encodeURIComponent(dataset)}`), getJSON("/models")]);
      const docText = JSON.stringify(doc.layers), modelsText = JSON.stringify(models);
      if (lastDataset !== null && docText !== lastDataset) onDataset(doc);
      if (lastModels !== null && modelsText !== lastModels) onModels(models);
      lastDataset = docText; lastModels = modelsText;
    } catch (_) { /* try again at the next tick */ }
    if (!stopped) timer = setTimeout(tick, intervalMs);
  }
  timer = setTimeout(tick, intervalMs);
  return () => { stopped = true; clearTimeout(timer); };
}
