// Line charts of per-epoch training metrics, drawn on a canvas (no chart library).
// Losses use the left axis; metrics in [0, 1] (Dice, IoU, accuracy) use the right axis.
const COLOURS = ["#4f9cff", "#ef5350", "#3fbf6f", "#e5b73b", "#b980ff", "#29c5c5", "#ff8a3d"];

function isLoss(name) { return /loss/i.test(name); }
// Bookkeeping numbers a run reports per epoch that are not quality curves.
const NOT_CURVES = new Set(["epoch", "step", "steps", "elapsed_s", "seconds", "labelled_pixels",
  "learning_rate", "lr", "batch_size"]);

function isCurve(name, points) {
  if (NOT_CURVES.has(name)) return false;
  return isLoss(name) || points.every(([, v]) => v >= 0 && v <= 1);
}

export function seriesFromEpochs(epochs) {
  const series = new Map();
  (epochs || []).forEach((epoch, i) => {
    const x = typeof epoch.epoch === "number" ? epoch.epoch : i + 1;
    for (const [name, value] of Object.entries(epoch)) {
      if (name === "epoch" || typeof value !== "number" || !isFinite(value)) continue;
      if (!series.has(name)) series.set(name, []);
      series.get(name).push([x, value]);
    }
  });
  for (const [name, points] of [...series]) if (!isCurve(name, points)) series.delete(name);
  return series;
}

// options: xLabel (default "epoch"), empty (what an empty chart says)
export function drawChart(canvas, epochs, { xLabel = "epoch", empty = "no epochs yet" } = {}) {
  const ratio = window.devicePixelRatio || 1;
  const box = canvas.getBoundingClientRect();
  canvas.width = Math.max(1, Math.round(box.width * ratio));
  canvas.height = Math.max(1, Math.round(box.height * ratio));
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  const w = box.width, h = box.height, pad = { l: 48, r: 48, t: 12, b: 50 };
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px sans-serif";
  const series = seriesFromEpochs(epochs);
  canvas.dataset.points = String([...series.values()].reduce((n, s) => n + s.length, 0));
  if (series.size === 0) {
    ctx.fillStyle = "#9aa3af";
    ctx.fillText(empty, w / 2 - 30, h / 2);
    return;
  }
  const all = [...series.values()].flat();
  const xMin = Math.min(...all.map((p) => p[0])), xMax = Math.max(...all.map((p) => p[0]), xMin + 1);
  const losses = [...series].filter(([n]) => isLoss(n)).flatMap(([, s]) => s.map((p) => p[1]));
  const lossMax = losses.length ? Math.max(...losses) * 1.05 || 1 : 1;
  const X = (x) => pad.l + ((x - xMin) / (xMax - xMin)) * (w - pad.l - pad.r);
  const Y = (v, loss) => pad.t + (1 - v / (loss ? lossMax : 1)) * (h - pad.t - pad.b);
  ctx.strokeStyle = "#363b44"; ctx.fillStyle = "#9aa3af";
  ctx.beginPath();
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + (i / 4) * (h - pad.t - pad.b);
    ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y);
    ctx.fillText((lossMax * (1 - i / 4)).toPrecision(2), 4, y + 4);
    ctx.fillText((1 - i / 4).toFixed(2), w - pad.r + 6, y + 4);
  }
  ctx.stroke();
  ctx.fillText(xLabel, w / 2 - 14, h - pad.b + 14);
  ctx.fillText(String(xMin), pad.l, h - pad.b + 14);
  ctx.fillText(String(xMax), w - pad.r - 10, h - pad.b + 14);
  let legendX = pad.l, legendY = h - pad.b + 28;
  [...series].forEach(([name, points], i) => {
    const colour = COLOURS[i % COLOURS.length];
    ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach(([x, v], j) => (j ? ctx.lineTo(X(x), Y(v, isLoss(name))) : ctx.moveTo(X(x), Y(v, isLoss(name)))));
    ctx.stroke();
    for (const [x, v] of points) ctx.fillRect(X(x) - 2, Y(v, isLoss(name)) - 2, 4, 4);
    const label = `${name}${isLoss(name) ? " (left axis)" : ""}`;
    const width = ctx.measureText(label).width;
    if (legendX + width > w - 8) { legendX = pad.l; legendY += 13; }
    ctx.fillText(label, legendX, legendY);
    legendX += width + 16;
  });
  ctx.lineWidth = 1;
}
