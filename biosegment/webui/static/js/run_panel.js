// The viewer's "Run" panel: the model to segment the dataset with (kept in step with the
// catalog's models) and "Segment this dataset"; its message line also carries the page's errors.
import { $, el, sendJSON } from "./common.js";

export function showError(error) {
  $("run-message").textContent = error.message || String(error);
}

function fillSegmentModels(models) {
  const names = models.filter((m) => m.state === "ok").map((m) => m.name);
  const select = $("segment-model");
  const before = select.value;
  select.replaceChildren(...names.map((n) => el("option", { value: n, title: n }, n)));
  select.value = names.includes(before) ? before : names[0] || "";
  $("segment-start").disabled = names.length === 0;
}

// The button stays disabled while its request is on the way, so a double click asks once (the
// server answers an identical request with the job already queued, too).
async function startSegmentation(dataset) {
  const button = $("segment-start");
  button.disabled = true;
  try {
    const job = await sendJSON("POST", "/jobs/segment", { dataset, model: $("segment-model").value });
    $("run-message").replaceChildren("Started ", el("a", { href: `/jobs#${job.id}` }, `job ${job.id}`));
  } catch (error) { showError(error); }
  finally { button.disabled = !$("segment-model").value; }
}

export function bindRunPanel(store) {
  store.subscribe((s) => s.models, fillSegmentModels);
  fillSegmentModels(store.get().models);
  $("segment-start").onclick = () => startSegmentation(store.get().dataset);
}
