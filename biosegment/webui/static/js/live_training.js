// The viewer's fine-tune panel and its live layer. "Start from" offers the project's default
// model, the model of the segmentation on screen, any other model, or a new network; "Minutes"
// bounds the run. While a train job of this dataset runs, a "live" layer shows what its latest
// weights make of the slice on screen (the server predicts it from the job's newest snapshot),
// with the job's validation figure beside it (scored at every snapshot) and, for a fine-tune,
// "better / worse than <base> by X" on the same held-out strokes; Accept / Discard end the run,
// and Accept on a model worse than its base asks first, offering to keep the base. The panel reads
// the page's store and changes its layers only through it; it asks for the job's state as a
// task of the page's one polling loop.
import { $, API, el, enc, getJSON, sendJSON } from "./common.js";
import { defaultColours } from "./colours.js";
import { every } from "./poller.js";
import { addLayer, layerKey, removeLayer, updateLayer } from "./viewer_layers.js";

export const LIVE_POLL_MS = 2000;

function age(seconds) {
  if (typeof seconds !== "number") return "";
  return seconds < 60 ? `${Math.round(seconds)} s ago` : `${Math.round(seconds / 60)} min ago`;
}

function say(text) {
  $("run-message").textContent = text;
  delete $("run-message").dataset.job;
}

// The model of the segmentation shown on top, if any.
function modelOnScreen(layers) {
  const shown = layers.filter((l) => l.kind === "segmentation" && l.visible && l.model);
  return shown.length ? shown[shown.length - 1].model : null;
}

function usableModels(models) { return models.filter((m) => m.state === "ok").map((m) => m.name); }

// What "Start from" offers depends on: the models, the segmentation on screen, the default.
function startFromChoices(state) {
  return JSON.stringify([usableModels(state.models), modelOnScreen(state.layers), state.defaultModel]);
}

export class LiveTraining {
  // flushEditor() -> Promise: the strokes not saved yet are saved (training reads the files)
  constructor(store, { flushEditor }) {
    this.store = store;
    this.flushEditor = flushEditor;
    this.job = null;      // the running train job of this dataset (its row)
    this.layerKey = null; // the live layer's key while there is one
  }

  get dataset() { return this.store.get().dataset; }

  bind() {
    $("train-start").onclick = () => this.startTraining();
    $("live-accept").onclick = () => this.accept();
    $("live-discard").onclick = () => this.discard();
    $("live-accept-anyway").onclick = () => this.accept({ confirmed: true });
    $("live-keep-base").onclick = () => this.discard();
    $("train-base").addEventListener("change", (e) => { e.target.dataset.chosen = "true"; });
    this.store.subscribe(startFromChoices, () => this.fillStartFrom());
    this.fillStartFrom();
    this.stopPolling = every(LIVE_POLL_MS, () => this.refresh());
  }

  // -- "Start from" ------------------------------------------------------------------------------

  fillStartFrom() {
    const { models: rows, layers, defaultModel: fallback } = this.store.get();
    const models = usableModels(rows), onScreen = modelOnScreen(layers);
    const select = $("train-base");
    const before = select.value, wasChosen = select.dataset.chosen === "true";
    const options = [];
    if (fallback && models.includes(fallback)) {
      options.push(el("option", { value: fallback, dataset: { choice: "default" } }, `project default (${fallback})`));
    }
    if (onScreen && onScreen !== fallback && models.includes(onScreen)) {
      options.push(el("option", { value: onScreen, dataset: { choice: "screen" } }, `on screen (${onScreen})`));
    }
    for (const name of models) {
      if (name !== fallback && name !== onScreen) options.push(el("option", { value: name }, name));
    }
    options.push(el("option", { value: "scratch", dataset: { choice: "scratch" } }, "from scratch (a new network)"));
    select.replaceChildren(...options);
    // the segmentation on screen wins until the person picks something themselves
    const automatic = onScreen && models.includes(onScreen) ? onScreen : (options[0].value);
    select.value = wasChosen && [...select.options].some((o) => o.value === before) ? before : automatic;
  }

  // -- starting ---------------------------------------------------------------------------------

  async startTraining() {
    const { editing } = this.store.get();
    if (!editing) { say("choose or create an annotation first"); return; }
    await this.flushEditor();
    const minutes = Number($("train-minutes").value);
    if (!(minutes > 0)) { say("Minutes must be a positive number"); return; }
    const body = { dataset: this.dataset, annotation: editing, minutes, base_model: $("train-base").value };
    try {
      const job = await sendJSON("POST", "/jobs/train", body);
      say("");
      $("run-message").replaceChildren("Fine-tuning: ", el("a", { href: `/jobs#${job.id}` }, `job ${job.id}`),
        " (the live layer appears with its first snapshot)");
      $("run-message").dataset.job = job.id;  // cleared when that job ends
      this.follow(job);
    } catch (error) { say(error.message || String(error)); }
  }

  // -- following a running job ----------------------------------------------------------------

  follow(job) {
    if (this.job && this.job.id === job.id) { this.job = job; return; }
    this.dropLayer();
    this.job = job;
    $("live-panel").hidden = false;
    $("live-panel").dataset.job = job.id;
    $("live-name").value = "";
    $("live-name").placeholder = (job.params && job.params.name) || "model name";
    $("live-status").textContent = "waiting for the first snapshot …";
    $("live-validation").textContent = "";
    this.showComparison(null);
    $("live-worse").hidden = true;
    this.setButtons(true);
  }

  setButtons(enabled) {
    $("live-accept").disabled = !enabled;
    $("live-discard").disabled = !enabled;
  }

  // After a refused accept or discard: a name to change leaves both open; a job already
  // accepted, discarded or ended (a conflict about the job itself) leaves them closed.
  setButtonsAfter(error) {
    this.setButtons(Boolean(this.job) && !(error.status === 409 && error.field === "job_id"));
  }

  async refresh() {
    if (!this.job || !["queued", "running"].includes(this.job.state)) {
      const running = await getJSON("/jobs?state=running&kind=train&limit=50");
      const mine = running.find((j) => j.params && j.params.dataset === this.dataset);
      if (mine) this.follow(mine);
      else if (this.job) this.finished();
      if (!mine) return;
    }
    const job = await getJSON(`/jobs/${enc(this.job.id)}`);
    this.job = job;
    if (!["queued", "running"].includes(job.state)) { this.finished(); return; }
    const live = await getJSON(`/jobs/${enc(job.id)}/live`);
    this.show(live);
  }

  show(live) {
    $("live-panel").dataset.step = String(live.step || 0);
    $("live-panel").dataset.pixels = String(live.training_pixels || 0);
    if (!live.available) return;
    if (!this.layerKey) this.addLayer();
    const layer = this.store.get().layers.find((l) => layerKey(l) === this.layerKey);
    if (layer && layer.version !== live.version) {
      updateLayer(this.store, this.layerKey, { previousVersion: layer.version, version: live.version });
      $("live-panel").dataset.version = live.version;
    }
    const minutes = live.elapsed_s >= 60 ? `${(live.elapsed_s / 60).toFixed(1)} min` : `${Math.round(live.elapsed_s || 0)} s`;
    $("live-status").textContent = `live: step ${live.step}, ${minutes} of training, snapshot ${age(live.age_s)}` +
      (live.training_pixels ? ` · ${live.training_pixels} painted pixels in training` : "");
    const v = live.validation;
    $("live-validation").textContent = v ? `${v.value.toFixed(3)} ${v.label} (step ${v.step ?? live.step})` : "validation: with the first snapshot";
    $("live-validation").dataset.value = v ? String(v.value) : "";
    this.showComparison(live.comparison);
  }

  // "better / worse than <base> by X", on the same held-out strokes; Accept asks first when worse
  showComparison(comparison) {
    this.comparison = comparison || null;
    const line = $("live-comparison");
    line.textContent = comparison ? comparison.text : "";
    line.dataset.verdict = comparison ? comparison.verdict : "";
  }

  addLayer() {
    const job = this.job;
    const layer = {
      // predicted slice by slice as the 2-D network segments: shown in the XY view
      kind: "live", name: job.id, label: `live: ${(job.params && job.params.name) || job.id} (XY view)`,
      tileBase: `${API}/jobs/${enc(job.id)}/live/tiles`, axes: ["z"],
      visible: true, opacity: 0.5, hiddenClasses: new Set(), version: "",
      colours: defaultColours({ kind: "segmentation" }, this.store.get().classes),
    };
    this.layerKey = layerKey(layer);
    addLayer(this.store, layer);
  }

  dropLayer() {
    if (!this.layerKey) return;
    removeLayer(this.store, this.layerKey);
    this.layerKey = null;
  }

  // The run is over: a published model or a failure is reported in the panel; a discarded or
  // cancelled run leaves nothing to report, so the panel goes. "Fine-tuning: job …" goes either way.
  finished() {
    const job = this.job;
    this.dropLayer();
    this.setButtons(false);
    if (job) {
      const result = job.result || {};
      $("live-status").textContent = job.state === "succeeded"
        ? `published model ${result.model}` + (result.segmentation ? `; segmenting the dataset as ${result.segmentation}` : "")
        : `the fine-tune ${job.state}${job.message ? ": " + job.message : ""}`;
      $("live-panel").dataset.state = job.state;
      if (job.state === "cancelled") $("live-panel").hidden = true;
      if ($("run-message").dataset.job === job.id) say("");
    }
    this.job = null;
  }

  // -- ending it ------------------------------------------------------------------------------

  async accept({ confirmed = false } = {}) {
    if (!this.job) return;
    if (!confirmed && this.comparison && this.comparison.verdict === "worse") {
      // a worse model is published only when the person says so; keeping the base discards the run
      $("live-worse-text").textContent = `This model is ${this.comparison.text}. Publish it anyway, or keep ${this.comparison.base}?`;
      $("live-keep-base").textContent = `Keep ${this.comparison.base}`;
      $("live-worse").hidden = false;
      return;
    }
    $("live-worse").hidden = true;
    const name = $("live-name").value.trim();
    this.setButtons(false);  // one of accept and discard, once: no second click while it is sent
    try {
      const reply = await sendJSON("POST", `/jobs/${enc(this.job.id)}/accept`, name ? { name } : {});
      $("live-status").textContent = `accepted: finishing the epoch, then publishing ${reply.accepted_name} …`;
    } catch (error) {
      this.setButtonsAfter(error);
      say(error.message || String(error));
    }
  }

  async discard() {
    if (!this.job) return;
    $("live-worse").hidden = true;
    this.setButtons(false);
    try {
      await sendJSON("POST", `/jobs/${enc(this.job.id)}/discard`);
      $("live-status").textContent = "discarding …";
    } catch (error) {
      this.setButtonsAfter(error);
      say(error.message || String(error));
    }
  }
}
