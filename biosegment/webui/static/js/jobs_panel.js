// The small jobs panel in the corner of every page: queued and running jobs with live progress.
import { el, jobSummary, poll, progressBar, duration } from "./common.js";

const panel = document.getElementById("jobs-panel");
const list = document.getElementById("jobs-panel-list");
if (panel && !document.getElementById("jobs-page")) {
  poll("/jobs?limit=20", 1500, (jobs) => {
    const active = jobs.filter((j) => j.state === "queued" || j.state === "running");
    panel.hidden = active.length === 0;
    list.replaceChildren(...active.map((job) => el("div", { class: "job" },
      el("div", {}, jobSummary(job)),
      el("div", { class: "row" }, progressBar(job.progress),
        el("span", { class: "muted" }, job.eta ? duration(job.eta) : job.state)))));
  });
}
