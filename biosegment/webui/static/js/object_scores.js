// How a segmentation's object scores read, one line per class scored, e.g. "membrane objects:
// F1@0.5 0.813, precision 0.750, recall 0.886, AP-75 0.531 (6 found, 7 true, 5 matched; slices
// 20-29)". A segmentation.json holds them under object_scores (per class name, or flat), and
// may hold object_scores_<variant> entries (a watershed split, say) and object_scores_note (why
// nothing was scored); each shows as it is.
const SCORES = [
  [["object_f1", "f1_50"], "F1@0.5"], [["object_precision", "precision_50"], "precision"],
  [["object_recall", "recall_50"], "recall"], [["ap75", "ap_75"], "AP-75"],
];
const COUNTS = [[["predicted_objects", "objects"], "found"], [["true_objects", "truth_objects"], "true"], [["matched"], "matched"]];
const KNOWN = new Set([...SCORES, ...COUNTS].flatMap(([names]) => names).concat(["slices"]));

function number(value) { return typeof value === "number" && isFinite(value) ? value.toFixed(3) : "-"; }

function first(scores, names) { return names.find((name) => name in scores); }

// Whether `value` is one set of scores (rather than sets per class).
function isScores(value) { return [...SCORES, ...COUNTS].some(([names]) => first(value, names)); }

function line(label, scores) {
  const parts = SCORES.filter(([names]) => first(scores, names)).map(([names, word]) => `${word} ${number(scores[first(scores, names)])}`);
  for (const [name, value] of Object.entries(scores)) {
    if (!KNOWN.has(name) && typeof value === "number") parts.push(`${name.replace(/_/g, " ")} ${number(value)}`);
  }
  const counts = COUNTS.filter(([names]) => typeof scores[first(scores, names)] === "number")
    .map(([names, word]) => `${scores[first(scores, names)]} ${word}`);
  const notes = counts.length ? [counts.join(", ")] : [];
  if (Array.isArray(scores.slices) && scores.slices.length === 2) notes.push(`slices ${scores.slices[0]}–${scores.slices[1]}`);
  return `${label}: ${parts.join(", ")}${notes.length ? ` (${notes.join("; ")})` : ""}`;
}

// The lines for the object_scores entries of a segmentation's card ({} when it has none).
export function objectScoreLines(entries) {
  const lines = [];
  for (const [key, value] of Object.entries(entries || {})) {
    const variant = key.replace(/^object_scores_?/, "").replace(/_/g, " ");
    if (typeof value === "string") { lines.push(`object scores${variant && variant !== "note" ? ` (${variant})` : ""}: ${value}`); continue; }
    if (!value || typeof value !== "object") continue;
    const suffix = variant ? ` (${variant})` : "";
    if (isScores(value)) { lines.push(line(`objects${suffix}`, value)); continue; }
    for (const [name, scores] of Object.entries(value)) {
      if (scores && typeof scores === "object") lines.push(line(`${name} objects${suffix}`, scores));
    }
  }
  return lines;
}
