// Dashboard: everything the data folder holds, redrawn whenever the catalog changes, and the
// trash, from which a deleted annotation, segmentation or model is restored.
import { API, el, getJSON, stateBadge, $, enc } from "./common.js";
import { poll } from "./poller.js";


function classList(classes) {
  return (classes || []).map((c) => el("span", { class: "swatch" },
    el("i", { style: `display:inline-block;width:10px;height:10px;background:${c.color || "#888"}` }),
    `${c.id} ${c.name}`));
}

// Every score says what it was computed on: the validation pixels, or data held out from training.
function metricsText(model) {
  const best = Object.entries(model.best_metrics || {}).map(([k, v]) => `${k} ${Number(v).toFixed(3)}`).join(", ");
  const lines = [];
  if (best) lines.push(model.metrics_on ? `${best} on ${model.metrics_on}` : `${best} (training history)`);
  for (const entry of model.held_out || []) lines.push(entry.short);
  return lines.map((line) => el("div", { class: "metric" }, line));
}

function datasetCard(d) {
  const shape = d.shape ? d.shape.join(" x ") : "?";
  const voxel = d.voxel_size ? `${d.voxel_size.join(" x ")} nm` : "voxel size unknown";
  return el("div", { class: "card", dataset: { name: d.name } },
    d.thumbnail_url ? el("img", { src: d.thumbnail_url, alt: `${d.name} middle slice` })
      : el("div", { class: "muted", style: "height:200px" }, "no preview"),
    el("div", {}, el("a", { class: "name", href: d.viewer_url }, d.name)),
    el("div", { class: "muted" }, `${shape} (z y x) ${d.dtype || ""}`),
    el("div", { class: "muted" }, voxel),
    el("div", {}, stateBadge(d.state), d.project ? ` ${d.project}` : ""),
    d.error ? el("div", { class: "muted" }, d.error) : null);
}

// "2 slices: z 0, 4" rather than "0, 4", which read as "none" when only slice 0 was painted.
function paintedSlices(slices) {
  if (slices.length === 0) return "none yet";
  const shown = slices.length > 12 ? [...slices.slice(0, 12), "…"] : slices;
  return `${slices.length} slice${slices.length === 1 ? "" : "s"}: z ${shown.join(", ")}`;
}

function trashedThing(entry) {
  const item = entry.item || {};
  if (!item.kind) return entry.moved.join(", ");
  return `${item.kind} ${item.dataset ? `${item.dataset}/` : ""}${item.name}`;
}

async function restore(entry) {
  const response = await fetch(`${API}/trash/${enc(entry.id)}/restore`, { method: "POST" });
  const body = await response.json().catch(() => null);
  $("trash-message").textContent = response.ok ? `Restored the ${trashedThing(entry)}.`
    : (body && body.error) || `HTTP ${response.status}`;
  await showTrash();
}

async function showTrash() {
  const entries = await getJSON("/trash");
  $("trash").replaceChildren(...(entries.length ? entries.map((entry) => el("tr", { dataset: { entry: entry.id } },
    el("td", {}, trashedThing(entry)), el("td", {}, entry.why || ""),
    el("td", {}, entry.when ? new Date(entry.when).toLocaleString() : ""),
    el("td", {}, el("button", { type: "button", title: `move it back from ${entry.location}`,
      onclick: () => restore(entry).catch((error) => { $("trash-message").textContent = error.message; }) },
    "Restore"))))
    : [el("tr", {}, el("td", { colspan: "4", class: "muted" }, "The trash is empty."))]));
}

function render(doc) {
  const problems = doc.problems || [];
  $("problems").hidden = problems.length === 0;
  $("problem-list").replaceChildren(...problems.map((p) =>
    el("li", {}, [p.source, p.where].filter(Boolean).join(": "), ": ", p.reason)));
  $("projects").replaceChildren(...doc.projects.map((p) => el("tr", {},
    el("td", {}, p.name), el("td", {}, classList(p.classes)), el("td", {}, p.default_model || ""),
    el("td", {}, stateBadge(p.state)))));
  $("datasets").replaceChildren(...doc.datasets.map(datasetCard));
  $("models").replaceChildren(...doc.models.map((m) => el("tr", { dataset: { name: m.name } },
    el("td", {}, el("a", { href: m.page_url }, m.name)), el("td", {}, classList(m.classes)),
    el("td", {}, m.parent || ""), el("td", { class: "metrics" }, metricsText(m)),
    el("td", {}, stateBadge(m.state)))));
  $("segmentations").replaceChildren(...doc.segmentations.map((s) => el("tr", {},
    el("td", {}, el("a", { href: `/datasets/${enc(s.dataset)}` }, s.dataset)),
    el("td", {}, s.name), el("td", {}, s.model || ""), el("td", {}, stateBadge(s.state)))));
  $("annotations").replaceChildren(...doc.annotations.map((a) => el("tr", {},
    el("td", {}, el("a", { href: `/datasets/${enc(a.dataset)}` }, a.dataset)),
    el("td", {}, a.name), el("td", {}, paintedSlices(a.slices || [])),
    el("td", {}, stateBadge(a.state)))));
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  document.body.dataset.datasets = String(doc.datasets.length);
  showTrash().catch((error) => { $("trash-message").textContent = error.message; });
}

poll("/dashboard", 2000, render);
