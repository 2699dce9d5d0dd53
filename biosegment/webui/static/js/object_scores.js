// How a segmentation's object scores read: "objects: F1@0.5 0.813, precision 0.750, recall 0.886,
// AP-75 0.531 (6 objects, 7 true)", one line per entry of its segmentation.json
// (object_scores, and object_scores_<variant> for each variant scored, such as a watershed split).
const WORDS = [["f1_50", "F1@0.5"], ["precision_50", "precision"], ["recall_50", "recall"], ["ap_75", "AP-75"]];

function number(value) { return typeof value === "number" && isFinite(value) ? value.toFixed(3) : "-"; }

function line(key, scores) {
  const variant = key.replace(/^object_scores_?/, "").replace(/_/g, " ");
  const parts = WORDS.filter(([name]) => name in scores).map(([name, word]) => `${word} ${number(scores[name])}`);
  const known = new Set(["objects", "truth_objects", ...WORDS.map(([name]) => name)]);
  for (const [name, value] of Object.entries(scores)) {
    if (!known.has(name) && typeof value === "number") parts.push(`${name.replace(/_/g, " ")} ${number(value)}`);
  }
  const counts = [];
  if (typeof scores.objects === "number") counts.push(`${scores.objects} objects`);
  if (typeof scores.truth_objects === "number") counts.push(`${scores.truth_objects} true`);
  return `objects${variant ? ` (${variant})` : ""}: ${parts.join(", ")}${counts.length ? ` (${counts.join(", ")})` : ""}`;
}

// The lines for the `object_scores` entries of a card ({} when it has none: no lines).
export function objectScoreLines(entries) {
  return Object.entries(entries || {}).filter(([, s]) => s && typeof s === "object").map(([key, s]) => line(key, s));
}
