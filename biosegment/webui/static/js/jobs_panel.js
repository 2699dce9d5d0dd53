// The small jobs panel in the corner of every page: queued and running jobs with live progress.
import { el, jobSummary, progressBar, duration, $ } from "./common.js";
import { poll } from "./poller.js";

const panel = $("jobs-panel");
const list = $("jobs-panel-list");
if (panel && !$("jobs-page")) {
  poll("/jobs?limit=20", 1500, (jobs) => {
    const active = jobs.filter((j) => j.state === "queued" || j.state === "running");
    panel.hidden = active.length === 0;
    // the page keeps its content out of the panel's column, so it never covers a table or a card
    document.body.classList.toggle("jobs-panel-open", !panel.hidden);
    list.replaceChildren(...active.map((job) => el("div", { class: "job" },
      el("div", {}, jobSummary(job)),
      el("div", { class: "row" }, progressBar(job.progress),
        el("span", { class: "muted" }, job.eta ? duration(job.eta) : job.state)))));
  });
}

// A click on the title folds the panel to one line (remembered in this browser).
const title = panel && panel.querySelector("strong");
if (title) {
  const folded = () => localStorage.getItem("biosegment.jobsPanelFolded") === "1";
  panel.classList.toggle("folded", folded());
  title.style.cursor = "pointer";
  title.title = "fold or unfold";
  title.addEventListener("click", () => {
    localStorage.setItem("biosegment.jobsPanelFolded", folded() ? "0" : "1");
    panel.classList.toggle("folded", folded());
  });
}
