// A small bar chart of the objects' sizes on a canvas: the log-spaced bins the histogram route
// answers, each bar's height its count (on a square-root scale, so a few large objects still
// show beside many small ones), with the smallest and largest size written under it.
function size(value) { return value >= 1e4 || value < 0.01 ? value.toExponential(1) : String(Math.round(value * 100) / 100); }

// histogram: {edges, counts, measure}; range: [low, high] of the size filter (either null)
export function drawHistogram(canvas, histogram, range = [null, null]) {
  const ratio = window.devicePixelRatio || 1;
  const box = canvas.getBoundingClientRect();
  canvas.width = Math.max(1, Math.round(box.width * ratio));
  canvas.height = Math.max(1, Math.round(box.height * ratio));
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  const w = box.width, h = box.height, bottom = h - 14;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "10px sans-serif";
  ctx.fillStyle = "#9aa3af";
  const counts = histogram.counts || [];
  canvas.dataset.bars = String(counts.length);
  canvas.dataset.objects = String(counts.reduce((a, b) => a + b, 0));
  if (!counts.length) { ctx.fillText("no sizes to show", 4, h / 2); return; }
  const edges = histogram.edges;
  const most = Math.sqrt(Math.max(...counts)) || 1;
  const width = w / counts.length;
  const inRange = (i) => (range[0] === null || edges[i + 1] >= range[0]) && (range[1] === null || edges[i] <= range[1]);
  counts.forEach((count, i) => {
    const bar = (Math.sqrt(count) / most) * (bottom - 2);
    ctx.fillStyle = inRange(i) ? "#4f9cff" : "#3a4250";
    ctx.fillRect(i * width + 1, bottom - bar, Math.max(1, width - 2), bar);
  });
  ctx.fillStyle = "#9aa3af";
  const unit = histogram.measure === "volume_nm3" ? " nm³" : " voxels";
  ctx.fillText(size(edges[0]), 2, h - 2);
  const last = size(edges[edges.length - 1]) + unit;
  ctx.fillText(last, w - ctx.measureText(last).width - 2, h - 2);
}
