// Model page: what the model is, where it came from, its training curves, links that export it
// in the formats `biosegment models export` writes, and Rename and Delete (to the trash, with a
// Restore button until the page is left). The server refuses, naming the reason, a model that a
// project has as default or a queued or running job uses.
import { API, el, getJSON, sendJSON, $, enc } from "./common.js";
import { drawChart } from "./charts.js";

const root = $("model-page");
const name = root.dataset.model;

// The training history's best scores, and which pixels they were computed on.
function bestMetricsText(model) {
  const best = Object.entries(model.best_metrics || {}).map(([k, v]) => `${k} ${Number(v).toFixed(3)}`).join(", ");
  if (!best) return (model.held_out || []).length ? "none recorded during training (see the held-out scores)" : "none recorded";
  return model.metrics_on ? `${best} on ${model.metrics_on}` : best;
}

const EXPORTS = [["onnx", "ONNX"], ["torchscript", "TorchScript"], ["bioimageio", "bioimage.io"]];

function exportLinks() {
  $("model-export").replaceChildren(...EXPORTS.map(([format, title]) =>
    el("a", { href: `${API}/models/${enc(name)}/export/${format}`, download: "", class: "button", dataset: { format } },
      `Export as ${title}`)));
}

async function show() {
  const model = await getJSON(`/models/${enc(name)}`);
  const arch = model.architecture || {};
  const facts = [
    ["State", model.state], ["Location", model.location],
    ["Parent", model.parent ? el("a", { href: `/models/${enc(model.parent)}` }, model.parent) : "none"],
    ["Classes", (model.classes || []).map((c) => `${c.id} ${c.name}`).join(", ")],
    ["Architecture", Object.entries(arch).map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(", ")],
    ["Best metrics", bestMetricsText(model)],
    ["Validation during training", model.validation || "not recorded"],
  ];
  // scores on data kept out of training, each saying what it was computed on
  for (const entry of model.held_out || []) {
    facts.push([`Held out: ${entry.data}`, el("span", { class: "held-out" }, entry.text)]);
  }
  if (model.held_out_note) facts.push(["Never trained on", model.held_out_note]);
  const truth = model.ground_truth;
  if (truth) {
    const scores = ["mean_dice", "mean_iou", "pixel_error"].filter((k) => typeof truth[k] === "number")
      .map((k) => `${k} ${truth[k].toFixed(3)}`).join(", ");
    facts.push(["Ground truth", `${scores} ${truth.label || ""}`.trim()]);
  }
  const against = model.comparison || {};
  for (const [where, title] of [["strokes", "Against its base"], ["ground_truth", "Against its base (ground truth)"]]) {
    const entry = against[where];
    if (entry && entry.text) facts.push([title, el("span", { class: "comparison", dataset: { verdict: entry.verdict } }, entry.text)]);
  }
  $("model-facts").replaceChildren(...facts.map(([k, v]) =>
    el("tr", {}, el("th", {}, k), el("td", {}, v ?? ""))));
  drawChart($("model-chart"), Array.isArray(model.metrics) ? model.metrics : []);
}

exportLinks();

async function send(method, path) {
  const response = await fetch(API + path, { method, headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error((body && body.error) || `HTTP ${response.status}`);
  return body;
}

const say = (text) => { $("model-message").textContent = text; };

async function rename() {
  const wanted = window.prompt(`New name of the model ${name}:`, name);
  if (!wanted || wanted === name) return;
  await sendJSON("POST", `/models/${enc(name)}/rename`, { name: wanted });
  window.location.assign(`/models/${enc(wanted)}`);
}

async function remove() {
  if (!window.confirm(`Move the model ${name} to the trash? You can restore it from here.`)) return;
  const entry = await send("DELETE", `/models/${enc(name)}`);
  $("model-rename").disabled = $("model-delete").disabled = true;
  say(`Moved to the trash (${entry.location}).`);
  const restore = el("button", { type: "button", id: "model-restore", onclick: async () => {
    try {
      await send("POST", `/trash/${enc(entry.id)}/restore`);
      restore.remove();
      $("model-rename").disabled = $("model-delete").disabled = false;
      say("Restored.");
      await show();
    } catch (error) { say(error.message); }
  } }, "Restore");
  $("model-actions").append(restore);
}

$("model-rename").onclick = () => rename().catch((error) => say(error.message));
$("model-delete").onclick = () => remove().catch((error) => say(error.message));
show();
