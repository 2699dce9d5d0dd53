// One view of a dataset along one axis (z: XY slices, y: XZ planes, x: YZ planes), drawn from
// 512x512 tiles of a zoom pyramid so that even an 8k x 8k slice only loads what the screen shows.
// Raw tiles are drawn with the brightness/contrast filter; label layers are coloured per class;
// the annotation being edited is drawn from the editor's own full-resolution canvas.
import { API, enc } from "./common.js";
import { colourise } from "./colours.js";

const TILE = 512;
const MAX_CACHED_TILES = 600;

// A tile that failed (a live prediction still running answers 503 to all but a few waiting
// requests) is asked again after a pause that doubles each time, a few times at most.
const RETRY_MS = 1500;
const MAX_RETRIES = 5;

class TileCache {
  constructor(onLoad) { this.entries = new Map(); this.failures = new Map(); this.onLoad = onLoad; }
  get(url) {
    let entry = this.entries.get(url);
    if (entry) { this.entries.delete(url); this.entries.set(url, entry); return entry; }
    entry = { image: new Image(), ready: false, coloured: null, paletteKey: null };
    entry.image.onload = () => { entry.ready = true; this.failures.delete(url); this.onLoad(); };
    entry.image.onerror = () => {
      const tries = (this.failures.get(url) || 0) + 1;
      this.failures.delete(url);
      this.failures.set(url, tries);
      if (this.failures.size > MAX_CACHED_TILES) this.failures.delete(this.failures.keys().next().value);
      if (tries > MAX_RETRIES) return;  // stays as it is: an empty tile, not asked again
      setTimeout(() => {
        if (this.entries.get(url) === entry) { this.entries.delete(url); this.onLoad(); }
      }, RETRY_MS * 2 ** (tries - 1));
    };
    entry.image.src = url;
    this.entries.set(url, entry);
    if (this.entries.size > MAX_CACHED_TILES) this.entries.delete(this.entries.keys().next().value);
    return entry;
  }
  peek(url) { return this.entries.get(url) || null; }
  forget(prefix) {
    for (const url of [...this.entries.keys()]) if (url.startsWith(prefix)) this.entries.delete(url);
    for (const url of [...this.failures.keys()]) if (url.startsWith(prefix)) this.failures.delete(url);
  }
}

export class TiledView {
  // options: dataset, axis, pyramid (levels of this axis), rowAspect, onCursor(p), onChange()
  constructor(canvas, options) {
    Object.assign(this, { rowAspect: 1, onCursor: () => {}, onPointer: null }, options);
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.index = 0;
    this.layers = [];          // {kind, name, visible, opacity, palette, paletteKey, version}
    this.editorCanvas = null;  // the annotation being painted (axis z only)
    this.editorOpacity = 0.6;
    this.filter = "none";
    this.crosshair = null;     // {row, col} in plane pixels
    this.pointer = null;       // [x, y] canvas pixels under the mouse, for the brush outline
    this.brushRadius = null;   // () -> radius in plane pixels of the brush outline (0: none)
    this.outline = null;       // {id, z, polygons} of the object picked in the Objects panel
    this.height = this.pyramid[0].height;
    this.width = this.pyramid[0].width;
    this.tiles = new TileCache(() => this.requestDraw());
    this.scale = 1; this.left = 0; this.top = 0;
    this.autoFit = true;       // keep fitting the plane to the view until someone zooms or pans
    this.bindEvents();
    new ResizeObserver(() => { this.resize(); if (this.autoFit) this.fit(); }).observe(canvas);
    this.resize();
    this.fit();
  }

  resize() {
    const ratio = window.devicePixelRatio || 1;
    const box = this.canvas.getBoundingClientRect();
    this.canvas.width = Math.max(1, Math.round(box.width * ratio));
    this.canvas.height = Math.max(1, Math.round(box.height * ratio));
    this.pixelRatio = ratio;
    this.requestDraw();
  }

  fit() {
    const w = this.canvas.width, h = this.canvas.height;
    this.scale = Math.min(w / this.width, h / (this.height * this.rowAspect));
    this.left = (this.width - w / this.scale) / 2;
    this.top = (this.height * this.rowAspect - h / this.scale) / 2 / this.rowAspect;
    this.changed();
  }

  zoomBy(factor, cx = this.canvas.width / 2, cy = this.canvas.height / 2) {
    this.autoFit = false;
    const [row, col] = this.toPlane(cx, cy, false);
    this.scale = Math.max(0.01, Math.min(64, this.scale * factor));
    this.left = col - cx / this.scale;
    this.top = row - cy / (this.scale * this.rowAspect);
    this.changed();
  }

  changed() { this.requestDraw(); if (this.onChange) this.onChange(this); }

  // canvas pixel -> plane (row, col); clamp=true rounds down into the plane or returns null
  toPlane(cx, cy, clamp = true) {
    const col = this.left + cx / this.scale;
    const row = this.top + cy / (this.scale * this.rowAspect);
    if (!clamp) return [row, col];
    const r = Math.floor(row), c = Math.floor(col);
    if (r < 0 || c < 0 || r >= this.height || c >= this.width) return null;
    return [r, c];
  }

  eventPoint(event) {
    const box = this.canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * this.pixelRatio, (event.clientY - box.top) * this.pixelRatio];
  }

  bindEvents() {
    let drag = null;
    this.canvas.addEventListener("wheel", (event) => {
      event.preventDefault();
      const [x, y] = this.eventPoint(event);
      this.zoomBy(event.deltaY < 0 ? 1.25 : 0.8, x, y);
    }, { passive: false });
    this.canvas.addEventListener("contextmenu", (event) => event.preventDefault());
    this.canvas.addEventListener("pointerdown", (event) => {
      this.canvas.setPointerCapture(event.pointerId);
      const [x, y] = this.eventPoint(event);
      const painting = event.button === 0 && this.onPointer && this.onPointer.wants(event);
      if (painting) {
        drag = { paint: true };
        this.onPointer.down(this.toPlane(x, y, false));
      } else {
        drag = { paint: false, x, y, left: this.left, top: this.top };
      }
    });
    this.canvas.addEventListener("pointermove", (event) => {
      const [x, y] = this.eventPoint(event);
      const at = this.toPlane(x, y);
      this.onCursor(at);
      if (this.brushRadius) { this.pointer = [x, y]; this.requestDraw(); }
      if (!drag) return;
      if (drag.paint) this.onPointer.move(this.toPlane(x, y, false));
      else {
        this.autoFit = false;
        this.left = drag.left - (x - drag.x) / this.scale;
        this.top = drag.top - (y - drag.y) / (this.scale * this.rowAspect);
        this.changed();
      }
    });
    const end = (event) => {
      if (drag && drag.paint) this.onPointer.up();
      drag = null;
      if (this.canvas.hasPointerCapture(event.pointerId)) this.canvas.releasePointerCapture(event.pointerId);
    };
    this.canvas.addEventListener("pointerup", end);
    this.canvas.addEventListener("pointercancel", end);
    this.canvas.addEventListener("pointerleave", () => {
      this.onCursor(null);
      if (this.pointer) { this.pointer = null; this.requestDraw(); }
    });
  }

  level() {
    // the coarsest level whose pixels are still at least as fine as the screen's
    const wanted = Math.floor(Math.log2(1 / Math.min(this.scale, this.scale * this.rowAspect)));
    return Math.max(0, Math.min(this.pyramid.length - 1, wanted));
  }

  tileUrl(layer, level, row, col, version = layer.version) {
    if (layer.tileBase) {  // a layer served from elsewhere than the dataset's tiles (live)
      return `${layer.tileBase}/${this.axis}/${this.index}/${level}/${row}/${col}.png?v=${enc(version || "")}`;
    }
    const name = layer.name ? `&name=${enc(layer.name)}` : "";
    return `${API}/datasets/${enc(this.dataset)}/tiles/${layer.kind}/${this.axis}/` +
      `${this.index}/${level}/${row}/${col}.png?v=${enc(layer.version || "")}${name}`;
  }

  visibleTiles(level) {
    const info = this.pyramid[level];
    const span = TILE * 2 ** level;
    const [top, left] = this.toPlane(0, 0, false);
    const [bottom, right] = this.toPlane(this.canvas.width, this.canvas.height, false);
    const tiles = [];
    const r0 = Math.max(0, Math.floor(top / span)), r1 = Math.min(info.rows - 1, Math.floor(bottom / span));
    const c0 = Math.max(0, Math.floor(left / span)), c1 = Math.min(info.cols - 1, Math.floor(right / span));
    for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) tiles.push([r, c]);
    return tiles;
  }

  drawImageAt(image, row0, col0, rows, cols) {
    const x = (col0 - this.left) * this.scale;
    const y = (row0 - this.top) * this.scale * this.rowAspect;
    this.ctx.drawImage(image, x, y, cols * this.scale, rows * this.scale * this.rowAspect);
  }

  drawLayer(layer, level) {
    const span = TILE * 2 ** level;
    let complete = true;
    for (const [row, col] of this.visibleTiles(level)) {
      let entry = this.tiles.get(this.tileUrl(layer, level, row, col));
      if (!entry.ready) {
        complete = false;
        // while a new version loads, keep showing the one before (a live layer's last snapshot)
        const before = layer.previousVersion !== undefined
          ? this.tiles.peek(this.tileUrl(layer, level, row, col, layer.previousVersion)) : null;
        if (!before || !before.ready) continue;
        entry = before;
      }
      let image = entry.image;
      if (layer.kind !== "raw" || layer.palette) {  // a raw layer's table is its display window
        if (entry.paletteKey !== layer.paletteKey) {
          entry.coloured = colourise(entry.image, layer.palette);
          entry.paletteKey = layer.paletteKey;
        }
        image = entry.coloured;
      }
      const rows = Math.min(span, this.height - row * span);
      const cols = Math.min(span, this.width - col * span);
      this.drawImageAt(image, row * span, col * span, rows, cols);
    }
    return complete;
  }

  requestDraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  draw() {
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    const level = this.level();
    const coarsest = this.pyramid.length - 1;
    let complete = true;
    for (const layer of this.layers) {
      if (!layer.visible || layer.opacity <= 0) continue;
      const raw = layer.kind === "raw";
      ctx.globalAlpha = raw ? 1 : layer.opacity;
      ctx.filter = raw ? this.filter : "none";
      ctx.imageSmoothingEnabled = raw && this.scale < 4;
      // the coarsest level first, so nothing is blank while finer tiles arrive
      if (raw && level !== coarsest) this.drawLayer(layer, coarsest);
      complete = this.drawLayer(layer, level) && complete;
    }
    ctx.filter = "none";
    if (this.editorCanvas && this.editorVisible !== false) {
      ctx.globalAlpha = this.editorOpacity;
      ctx.imageSmoothingEnabled = false;
      this.drawImageAt(this.editorCanvas, 0, 0, this.height, this.width);
    }
    ctx.globalAlpha = 1;
    if (this.crosshair) this.drawCrosshair();
    this.drawObjectOutline();
    this.drawBrushOutline();
    this.canvas.dataset.complete = complete ? "true" : "false";
    this.canvas.dataset.index = String(this.index);
  }

  drawBrushOutline() {
    const radius = this.pointer && this.brushRadius ? this.brushRadius() : 0;
    this.canvas.dataset.brushOutline = radius > 0 ? String(radius) : "";
    if (radius <= 0) return;
    const ctx = this.ctx;
    ctx.beginPath();
    ctx.ellipse(this.pointer[0], this.pointer[1], radius * this.scale, radius * this.scale * this.rowAspect, 0, 0, 2 * Math.PI);
    ctx.lineWidth = 1;
    ctx.strokeStyle = "rgba(0, 0, 0, 0.8)"; ctx.stroke();
    ctx.setLineDash([4, 4]); ctx.strokeStyle = "rgba(255, 255, 255, 0.9)"; ctx.stroke();
    ctx.setLineDash([]);
  }

  // The picked object's outline, on the slice it was read for: polygons of [row, col] points
  // with pixel centres at whole coordinates (a pixel spans [row, row + 1) on screen).
  drawObjectOutline() {
    const outline = this.outline && this.outline.z === this.index ? this.outline : null;
    this.canvas.dataset.outline = outline ? String(outline.polygons.length) : "";
    this.canvas.dataset.outlineObject = outline ? String(outline.id) : "";
    if (!outline || !outline.polygons.length) return;
    const ctx = this.ctx;
    ctx.beginPath();
    for (const polygon of outline.polygons) {
      polygon.forEach(([row, col], i) => {
        const x = (col + 0.5 - this.left) * this.scale;
        const y = (row + 0.5 - this.top) * this.scale * this.rowAspect;
        if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      });
      ctx.closePath();
    }
    ctx.lineWidth = 3 * this.pixelRatio; ctx.strokeStyle = "rgba(0, 0, 0, 0.8)"; ctx.stroke();
    ctx.lineWidth = 1.5 * this.pixelRatio; ctx.strokeStyle = "#00e5ff"; ctx.stroke();
    ctx.lineWidth = 1;
  }

  drawCrosshair() {
    const ctx = this.ctx;
    ctx.strokeStyle = "rgba(255, 220, 0, 0.7)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    if (this.crosshair.row !== null) {
      const y = (this.crosshair.row + 0.5 - this.top) * this.scale * this.rowAspect;
      ctx.moveTo(0, y); ctx.lineTo(this.canvas.width, y);
    }
    if (this.crosshair.col !== null) {
      const x = (this.crosshair.col + 0.5 - this.left) * this.scale;
      ctx.moveTo(x, 0); ctx.lineTo(x, this.canvas.height);
    }
    ctx.stroke();
  }

  setIndex(index) { this.index = index; this.requestDraw(); }

  forgetLayer(layer) {
    this.tiles.forget(`${API}/datasets/${enc(this.dataset)}/tiles/${layer.kind}/`);
  }
}
