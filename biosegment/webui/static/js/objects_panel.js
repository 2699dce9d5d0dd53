// The viewer's "Objects" panel, shown when a segmentation has an object table: its objects in a
// table whose column heads sort it (id, class, volume, voxels, sphericity), filters by class and
// size, a histogram of sizes, the object scores, and a link to the filtered table as CSV. A
// click on a row moves to the object's centroid slice, centres the XY view on it and outlines
// it there (the outline follows the slice while the object is on it). The panel reads the
// layers from the store and changes only the cursor and `objectsOf` (the segmentation listed,
// whose object ids the voxel readout shows even while its layer is hidden).
import { $, API, el, enc, getJSON } from "./common.js";
import { drawHistogram } from "./object_histogram.js";
import { objectScoreLines } from "./object_scores.js";

const PER_PAGE = 50;
// [column, heading, what the heading stands for]: short headings keep five columns in the sidebar
const COLUMNS = [
  ["id", "id", "object id"], ["class", "class", "class"], ["volume_nm3", "nm³", "volume in nm³"],
  ["voxels", "voxels", "size in voxels"], ["sphericity", "spher.", "sphericity (1: a ball)"],
];

function cell(value, column) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  if (column === "sphericity") return value.toFixed(3);
  if (column === "volume_nm3") return value >= 1e5 ? value.toExponential(2) : String(Math.round(value));
  return String(value);
}

export class ObjectsPanel {
  constructor(store, views) {
    Object.assign(this, { store, views });
    this.root = $("objects-panel");
    this.segmentation = null;  // the segmentation whose objects are listed
    this.sort = "id"; this.order = "asc"; this.page = 1;
    this.document = null;      // the last page the list answered
    this.selected = null;      // the object clicked: its row
    this.request = 0;          // answers to older requests are dropped
  }

  bind() {
    // a new or rewritten table (a new version of its segmentation) is listed again
    this.store.subscribe((s) => s.layers.filter((l) => tablesOf(s).includes(l.name) && l.kind === "segmentation")
      .map((l) => `${l.name}@${l.version}`).join("\n"), () => this.choose());
    this.store.subscribe((s) => s.cursor[0], (z) => this.followSlice(z));
    $("objects-segmentation").addEventListener("change", (e) => this.show(e.target.value));
    for (const id of ["objects-class", "objects-min", "objects-max"]) {
      $(id).addEventListener("change", () => { this.page = 1; this.reload(); });
    }
    $("objects-prev").addEventListener("click", () => { if (this.page > 1) { this.page -= 1; this.reload(false); } });
    $("objects-next").addEventListener("click", () => {
      if (this.document && this.page * PER_PAGE < this.document.total) { this.page += 1; this.reload(false); }
    });
    this.choose();
  }

  // The segmentations with objects; the panel hides when there are none.
  choose() {
    const names = tablesOf(this.store.get());
    this.root.hidden = names.length === 0;
    const select = $("objects-segmentation");
    select.replaceChildren(...names.map((name) => el("option", { value: name }, name)));
    select.hidden = names.length < 2;
    if (!names.length) {
      this.segmentation = null; this.clearOutline();
      this.store.set({ objectsOf: null });
      return;
    }
    const shown = this.store.get().layers.find((l) => l.kind === "segmentation" && l.visible && l.objects);
    this.show(names.includes(this.segmentation) ? this.segmentation : (shown ? shown.name : names[0]), true);
  }

  show(name, keep = false) {
    if (name !== this.segmentation || !keep) {
      this.segmentation = name;
      this.page = 1; this.selected = null; this.clearOutline(); $("objects-mesh").hidden = true;
      $("objects-class").replaceChildren(el("option", { value: "" }, "all classes"));
    }
    $("objects-segmentation").value = name;
    this.store.set({ objectsOf: name });  // the readout names this segmentation's objects
    this.reload();
  }

  base() {
    return `/datasets/${enc(this.store.get().dataset)}/segmentations/${enc(this.segmentation)}/objects`;
  }

  // The filters as query parameters (sizes in nm³ where the voxel size is known, else voxels).
  filters() {
    const params = new URLSearchParams();
    const cls = $("objects-class").value;
    if (cls) params.set("class", cls);
    const measure = this.document && !this.document.volume_known ? "voxels" : "volume_nm3";
    const low = $("objects-min").value, high = $("objects-max").value;
    if (low !== "") params.set(`min_${measure}`, low);
    if (high !== "") params.set(`max_${measure}`, high);
    return params;
  }

  async reload(histogramToo = true) {
    if (!this.segmentation) return;
    const asked = ++this.request;
    const filters = this.filters();
    const list = new URLSearchParams(filters);
    Object.entries({ sort: this.sort, order: this.order, page: this.page, per_page: PER_PAGE })
      .forEach(([key, value]) => list.set(key, String(value)));
    const sorted = new URLSearchParams(filters);
    sorted.set("sort", this.sort); sorted.set("order", this.order);
    $("objects-download").href = `${API}${this.base()}.csv?${sorted}`;
    try {
      const document = await getJSON(`${this.base()}?${list}`);
      if (asked !== this.request) return;
      this.document = document;
      this.render(document);
      $("objects-message").textContent = "";
      if (histogramToo) {
        const only = new URLSearchParams();
        if (filters.has("class")) only.set("class", filters.get("class"));
        const histogram = await getJSON(`${this.base()}/histogram?${only}`);
        if (asked !== this.request) return;
        const low = $("objects-min").value, high = $("objects-max").value;
        drawHistogram($("objects-histogram"), histogram, [low === "" ? null : Number(low), high === "" ? null : Number(high)]);
      }
      this.root.dataset.ready = "true";
    } catch (error) {
      if (asked === this.request) $("objects-message").textContent = error.message;
    }
  }

  render(document) {
    const classSelect = $("objects-class");
    if (classSelect.options.length === 1) {
      classSelect.append(...document.classes.map((c) => el("option", { value: String(c.id) }, `${c.name} (${c.objects})`)));
    }
    $("objects-unit").textContent = document.volume_known ? "nm³" : "voxels";
    const names = new Map(document.classes.map((c) => [c.id, c.name]));
    const columns = COLUMNS.filter(([key]) => document.columns.includes(key) && (key !== "volume_nm3" || document.volume_known));
    $("objects-table").replaceChildren(
      el("thead", {}, el("tr", {}, ...columns.map(([key, label, meaning]) => el("th", {
        dataset: { sort: key }, class: key === this.sort ? `sorted ${this.order}` : "", title: `${meaning}: a click sorts by it`,
        onclick: () => this.sortBy(key),
      }, label + (key === this.sort ? (this.order === "asc" ? " ▲" : " ▼") : ""))))),
      el("tbody", {}, ...document.rows.map((row) => el("tr", {
        dataset: { objectId: String(row.id) },
        class: this.selected && this.selected.id === row.id ? "selected" : "",
        title: "go to this object", onclick: () => this.select(row),
      }, ...columns.map(([key]) => el("td", {}, key === "class" ? (row.class_name || names.get(row.class) || cell(row.class, key)) : cell(row[key], key)))))));
    const first = document.total ? (document.page - 1) * PER_PAGE + 1 : 0;
    const last = Math.min(document.total, document.page * PER_PAGE);
    $("objects-page").textContent = `${first}–${last} of ${document.total}` +
      (document.total !== document.objects ? ` (${document.objects} in all)` : "");
    this.root.dataset.total = String(document.total);
    $("objects-scores").replaceChildren(...objectScoreLines(document.object_scores).map((text) => el("div", {}, text)));
  }

  sortBy(column) {
    this.order = this.sort === column && this.order === "asc" ? "desc" : "asc";
    this.sort = column; this.page = 1;
    this.reload(false);
  }

  // Go to the object: its centroid slice, the XY view centred on it, its outline drawn.
  select(row) {
    this.selected = row;
    const mesh = $("objects-mesh");
    mesh.hidden = !(this.document && this.document.instances);
    mesh.href = `${API}${this.base()}/${row.id}/mesh?format=ply`;
    mesh.textContent = `Mesh of ${row.id}`;
    for (const tr of $("objects-table").querySelectorAll("tbody tr")) {
      tr.classList.toggle("selected", tr.dataset.objectId === String(row.id));
    }
    const { shape, cursor } = this.store.get();
    const [cz, cy, cx] = ["z", "y", "x"].map((a, i) => {
      const value = row[`centroid_${a}`];
      return typeof value === "number" ? Math.round(value) : cursor[i];
    });
    const view = this.views.z;
    view.autoFit = false;
    view.left = cx + 0.5 - view.canvas.width / (2 * view.scale);
    view.top = cy + 0.5 - view.canvas.height / (2 * view.scale * view.rowAspect);
    view.changed();
    const z = Math.max(0, Math.min(shape[0] - 1, cz));
    if (z === cursor[0]) this.followSlice(z);
    this.store.set({ cursor: [z, Math.max(0, Math.min(shape[1] - 1, cy)), Math.max(0, Math.min(shape[2] - 1, cx))] });
  }

  // The selected object's outline on slice z, where the object reaches it.
  async followSlice(z) {
    const row = this.selected;
    if (!row) return;
    const z0 = typeof row.bbox_z0 === "number" ? row.bbox_z0 : 0;
    const z1 = typeof row.bbox_z1 === "number" ? row.bbox_z1 : Infinity;
    if (z < z0 || z >= z1 || !this.document || !this.document.instances) { this.setOutline(row.id, z, []); return; }
    try {
      const outline = await getJSON(`${this.base()}/${row.id}/outline?z=${z}`);
      if (this.selected === row) this.setOutline(row.id, outline.z, outline.polygons);
    } catch (error) {
      $("objects-message").textContent = error.message;
    }
  }

  setOutline(id, z, polygons) {
    this.views.z.outline = { id, z, polygons };
    this.views.z.requestDraw();
  }

  clearOutline() {
    this.views.z.outline = null;
    this.views.z.requestDraw();
  }
}

// The names of the segmentations that have an object table.
function tablesOf(state) {
  return state.layers.filter((l) => l.kind === "segmentation" && l.objects && (l.state || "ok") === "ok").map((l) => l.name);
}
