// Jobs page: every job with live progress and ETA; the selected one with its training curves,
// its log, cancel and retry, accept or discard for a running fine-tune, and a link to what it
// produced.
import { API, el, getJSON, jobSummary, progressBar, duration, sendJSON, stateBadge, percent, $, enc } from "./common.js";
import { poll } from "./poller.js";
import { drawChart } from "./charts.js";

let selected = location.hash ? decodeURIComponent(location.hash.slice(1)) : null;
let jobsById = new Map();

function resultLink(job) {
  const result = job.result || {};
  const p = job.params || {};
  if (job.state !== "succeeded") return null;
  if (job.kind === "train" && (p.name || result.model)) {
    const name = result.model || p.name;  // an accepted fine-tune may have been renamed
    return el("a", { href: `/models/${enc(name)}`, id: "job-result-link" }, `model ${name}`);
  }
  if (job.kind === "segment") {
    const name = p.name || result.name || "";
    const show = enc(`segmentation:${name}`);
    return el("a", { href: `/datasets/${enc(p.dataset)}?show=${show}`, id: "job-result-link" },
      `segmentation ${name} of ${p.dataset}`);
  }
  return null;
}

function renderRows(jobs) {
  jobsById = new Map(jobs.map((j) => [j.id, j]));
  $("no-jobs").hidden = jobs.length > 0;
  if (!selected && jobs.length) selected = jobs[0].id;
  $("job-rows").replaceChildren(...jobs.map((job) => el("tr", {
    class: job.id === selected ? "selected" : "", dataset: { job: job.id, state: job.state },
    onclick: () => { selected = job.id; location.hash = job.id; renderRows([...jobsById.values()]); renderDetail(); },
  },
  el("td", {}, job.id.slice(0, 8)), el("td", {}, jobSummary(job)), el("td", {}, stateBadge(job.state)),
  el("td", {}, progressBar(job.progress)), el("td", {}, job.state === "running" ? duration(job.eta) : ""),
  el("td", {}, job.state === "queued" || job.state === "running"
    ? el("button", { onclick: (e) => { e.stopPropagation(); act(job.id, "cancel"); } }, "Cancel")
    : job.state === "failed" || job.state === "cancelled"
      ? el("button", { onclick: (e) => { e.stopPropagation(); act(job.id, "retry"); } }, "Retry") : null))));
  renderDetail();
}

// Retry makes a new job: the detail follows it, as a person who pressed Retry watches that run.
async function act(id, action, body) {
  try {
    const reply = await sendJSON("POST", `/jobs/${enc(id)}/${action}`, body);
    if (action === "retry" && reply && reply.id) {
      jobsById.set(reply.id, reply);
      selected = reply.id;
      location.hash = reply.id;  // the hashchange handler redraws rows and detail
    }
  } catch (error) { $("job-message").textContent = error.message; }
}

// A fine-tune against its base model: live while it runs (the latest snapshot, on held-out
// strokes), from its result once it ended (held-out strokes, and the ground truth if any).
let comparison = null;
async function showComparison(job) {
  const line = $("job-comparison");
  let shown = [];
  if (job.kind === "train" && job.state === "running") {
    try {
      const live = await getJSON(`/jobs/${enc(job.id)}/live`);
      shown = live.comparison ? [live.comparison] : [];
    } catch (_) { shown = []; }
  } else if (job.kind === "train" && job.result && job.result.comparison) {
    const { strokes, ground_truth: truth } = job.result.comparison;
    shown = [strokes, truth].filter(Boolean);
  }
  if (selected !== job.id) return;  // another job was chosen meanwhile
  comparison = shown[0] || null;
  line.hidden = !shown.length;
  line.dataset.verdict = comparison ? comparison.verdict : "";
  line.replaceChildren(...shown.map((c) => el("div", { class: "comparison", dataset: { verdict: c.verdict } }, c.text)));
}

// A running training can be ended here as in the viewer: accepted under a name, or discarded;
// Accept on a model worse than its base asks first, offering to keep the base.
function showLiveControls(job) {
  const p = job.params || {};
  const running = job.kind === "train" && job.state === "running" && !job.cancel_requested;
  $("job-live").hidden = !running;
  if (!running) { $("job-worse").hidden = true; return; }
  $("job-accept-name").placeholder = p.name || "model name";
  $("job-live-link").href = `/datasets/${enc(p.dataset)}`;
  const accept = () => {
    $("job-worse").hidden = true;
    const name = $("job-accept-name").value.trim();
    act(job.id, "accept", name ? { name } : {});
  };
  $("job-accept").onclick = () => {
    if (comparison && comparison.verdict === "worse") {
      $("job-worse-text").textContent = `This model is ${comparison.text}. Publish it anyway, or keep ${comparison.base}?`;
      $("job-keep-base").textContent = `Keep ${comparison.base}`;
      $("job-worse").hidden = false;
      return;
    }
    accept();
  };
  $("job-accept-anyway").onclick = accept;
  $("job-keep-base").onclick = () => { $("job-worse").hidden = true; act(job.id, "discard"); };
  $("job-discard").onclick = () => { $("job-worse").hidden = true; act(job.id, "discard"); };
}

// The loss of every optimizer step, fetched a page at a time (only the steps not seen yet):
// each answer says whether more follow, and the cursor to ask for them with. A long run's
// curve keeps every other step whenever it passes STEPS_KEPT points.
const STEPS_KEPT = 20000;
const STEP_PAGES_PER_POLL = 40;
const steps = { job: null, records: [], after: 0, cursor: null, busy: false };
async function drawSteps(job) {
  const canvas = $("job-steps-chart");
  canvas.hidden = job.kind !== "train";
  $("job-steps-title").hidden = canvas.hidden;
  if (canvas.hidden || steps.busy) return;
  if (steps.job !== job.id) Object.assign(steps, { job: job.id, records: [], after: 0, cursor: null });
  steps.busy = true;
  try {
    for (let page = 0; page < STEP_PAGES_PER_POLL && steps.job === job.id; page++) {
      const cursor = steps.cursor === null ? "" : `&cursor=${steps.cursor}`;
      const reply = await getJSON(`/jobs/${enc(job.id)}/steps?after=${steps.after}${cursor}`);
      if (steps.job !== job.id) break;
      steps.records.push(...reply.steps);
      if (reply.steps.length) steps.after = reply.steps[reply.steps.length - 1].step;
      steps.cursor = reply.cursor;
      if (steps.records.length > STEPS_KEPT) {
        const last = steps.records.length - 1;
        steps.records = steps.records.filter((_, i) => i % 2 === 0 || i === last);
      }
      if (!reply.more) break;
    }
  } catch (_) { /* shown at the next poll */ }
  steps.busy = false;
  // at most about 600 points: every k-th step of a long run
  const every = Math.max(1, Math.ceil(steps.records.length / 600));
  const points = steps.records.filter((_, i) => i % every === 0 || i === steps.records.length - 1)
    .filter((s) => typeof s.loss === "number").map((s) => ({ epoch: s.step, step_loss: s.loss }));
  drawChart(canvas, points, { xLabel: "step", empty: "no steps yet" });
  canvas.dataset.steps = String(steps.records.length);
}

let lastLog = null;
async function renderDetail() {
  const job = jobsById.get(selected);
  $("job-detail").hidden = !job;
  if (!job) return;
  $("job-detail").dataset.job = job.id;
  $("job-detail").dataset.state = job.state;
  $("job-title").textContent = `${jobSummary(job)} (${job.id.slice(0, 8)})`;
  $("job-state").replaceWith(Object.assign(stateBadge(job.state), { id: "job-state" }));
  $("job-message").textContent = job.message || "";
  $("job-bar").style.width = `${100 * (job.progress || 0)}%`;
  $("job-progress").textContent = percent(job.progress);
  $("job-eta").textContent = job.state === "running" && job.eta ? `about ${duration(job.eta)} left` : "";
  $("job-cancel").disabled = !(job.state === "queued" || job.state === "running");
  $("job-retry").disabled = !(job.state === "failed" || job.state === "cancelled");
  $("job-cancel").onclick = () => act(job.id, "cancel");
  $("job-retry").onclick = () => act(job.id, "retry");
  $("job-result").replaceChildren(resultLink(job) || "");
  showLiveControls(job);
  showComparison(job);
  drawChart($("job-chart"), job.metrics);
  drawSteps(job);
  try {
    const response = await fetch(`${API}/jobs/${enc(job.id)}/log`, { cache: "no-store" });
    const text = response.ok ? await response.text() : "";
    if (text !== lastLog) {
      lastLog = text;
      const log = $("job-log");
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.textContent = text || "(no log yet)";
      if (atEnd) log.scrollTop = log.scrollHeight;
    }
  } catch (_) { /* the log appears once the job starts */ }
}

poll("/jobs?limit=100", 1000, renderRows);
window.addEventListener("resize", renderDetail);
// a link to another job of this page (jobs#<id>) selects it without a reload
window.addEventListener("hashchange", () => {
  if (!location.hash) return;
  selected = decodeURIComponent(location.hash.slice(1));
  renderRows([...jobsById.values()]);
});
