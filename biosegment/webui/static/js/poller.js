// The page's one polling loop. A panel that keeps itself up to date registers what it asks and
// how often (`every`, or `poll` for one address) instead of running a timer of its own: one
// timer wakes when the next task is due and runs it. A task never overlaps itself, waits its
// interval after it finished (a slow server is not asked faster than it answers), and one that
// fails (the daemon restarting) simply runs again at its next turn. A module is loaded once per
// page, so the jobs panel every page has and the page's own panels share this one loop. Like
// the timers it replaces, it keeps running while the page is hidden (browsers slow it down).
import { API } from "./common.js";

const tasks = new Set();
let timer = null;

function wake() {
  clearTimeout(timer);
  timer = null;
  const now = performance.now();
  let next = Infinity;
  for (const task of tasks) {
    if (task.busy) continue;
    if (task.due <= now) run(task);
    else next = Math.min(next, task.due);
  }
  if (next < Infinity) timer = setTimeout(wake, next - now);
}

async function run(task) {
  task.busy = true;
  try { await task.run(); } catch (_) { /* tried again at its next turn */ }
  task.busy = false;
  task.due = performance.now() + task.ms;
  if (tasks.has(task)) wake();
}

// Run `task()` every `ms` (first now, or after one interval with { now: false }); returns stop().
export function every(ms, task, { now = true } = {}) {
  const entry = { ms, run: task, busy: false, due: performance.now() + (now ? 0 : ms) };
  tasks.add(entry);
  wake();
  return () => { tasks.delete(entry); };
}

// Ask for `path` every `ms`; call `render(document)` only when the response text changed.
export function poll(path, ms, render) {
  let last = null;
  return every(ms, async () => {
    const response = await fetch(API + path, { cache: "no-cache" });
    if (!response.ok) return;
    const text = await response.text();
    if (text !== last) { last = text; render(JSON.parse(text)); }
  });
}

// How many tasks the loop serves now (for the page's tests and the console).
export function taskCount() { return tasks.size; }
