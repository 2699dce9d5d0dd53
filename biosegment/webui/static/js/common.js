// Helpers every page uses: API calls that surface the server's {"error", "field"} message,
// `$` (an element by id) and `enc` (a name made safe for an address), a tiny DOM builder that
// only ever sets text (never HTML, so names are always escaped), and formatting of progress
// and times.
export const API = "/api/v1";

export const $ = (id) => document.getElementById(id);
export const enc = encodeURIComponent;

export class ApiFailure extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.field = body ? body.field : null;
  }
}

async function failure(response) {
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  return new ApiFailure(response.status, body);
}

export async function getJSON(path) {
  const response = await fetch(API + path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function sendJSON(method, path, body) {
  const response = await fetch(API + path, {
    method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}),
  });
  if (!response.ok) throw await failure(response);
  return response.json();
}

// el("td", {class: "x", onclick: f}, "text", child) — strings become text nodes.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function replaceChildren(node, children) {
  node.replaceChildren(...children);
}

export function stateBadge(state) {
  return el("span", { class: `state ${state || ""}` }, state || "?");
}

export function percent(fraction) {
  return `${Math.round(100 * Math.max(0, Math.min(1, fraction || 0)))} %`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function progressBar(fraction) {
  return el("div", { class: "progress" },
    el("div", { style: `width:${100 * Math.max(0, Math.min(1, fraction || 0))}%` }),
    el("span", {}, percent(fraction)));
}

export function jobSummary(job) {
  const p = job.params || {};
  if (job.kind === "segment") return `segment ${p.dataset || "?"} with ${p.model || "?"}`;
  if (job.kind === "train") {
    const source = p.annotation ? `annotation ${p.annotation}` : "ground truth";
    const base = p.base_model ? ` from ${p.base_model}` : "";
    return `train on ${p.dataset || "?"} ${source}${base}`;
  }
  return job.kind;
}
