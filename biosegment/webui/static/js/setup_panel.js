// The "Dataset setup" panel of the viewer: the dataset's project and voxel size, the project's
// classes (name and colour) and default model, saved into setup.json through the API. The
// panel shows what the file holds: picking another project shows that project's own classes
// and default model. A save sends only what the person changed, so nothing the form did not
// show (or showed but nobody touched) is ever rewritten. The panel sends back the file's
// version: when the file changed on disk meanwhile the server refuses, and the panel says so
// and shows the file as it is now.
import { el, getJSON, sendJSON, enc } from "./common.js";

const AXES = ["z", "y", "x"];

export class SetupPanel {
  constructor({ root, dataset, onSaved }) {
    Object.assign(this, { root, dataset, onSaved });
    this.url = `/datasets/${enc(dataset)}/setup`;
  }

  $(name) { return this.root.querySelector(`[data-setup=${name}]`); }

  async load() {
    const [current, models] = await Promise.all([getJSON(this.url), getJSON("/models")]);
    this.show(current, models.filter((m) => m.state === "ok").map((m) => m.name));
  }

  show(current, modelNames = this.modelNames) {
    this.version = current.version;
    this.modelNames = modelNames;
    this.setups = new Map((current.project_setups || []).map((p) => [p.title, p]));
    if (current.project) this.setups.set(current.project.title, current.project);
    this.$("project").value = current.dataset.project || "";
    this.$("projects").replaceChildren(...current.projects.map((p) => el("option", { value: p })));
    const voxel = current.dataset.voxel_size || ["", "", ""];
    AXES.forEach((axis, i) => { this.$(`voxel-${axis}`).value = voxel[i] ?? ""; });
    // what the file says, to send only what the person changes
    this.shown = { project: this.projectName(), voxel: this.voxelText() };
    this.showProject();
  }

  projectName() { return this.$("project").value.trim(); }

  voxelText() { return AXES.map((axis) => this.$(`voxel-${axis}`).value.trim()); }

  // The classes and default model of the project named in the form, as setup.json has them
  // (an empty form for a project the file does not list yet).
  showProject() {
    const title = this.projectName();
    const project = this.setups.get(title) || { classes: [], default_model: "" };
    this.root.dataset.project = title;
    this.$("classes").replaceChildren(...project.classes.map((c) => this.classRow(c)));
    const models = [...this.modelNames];
    const options = models.map((n) => el("option", { value: n, title: n }, n));
    if (project.default_model && !models.includes(project.default_model)) {
      // still shown (and kept) when the model cannot be used now
      options.push(el("option", { value: project.default_model, title: "not usable now" },
        `${project.default_model} (not available)`));
    }
    this.$("default-model").replaceChildren(el("option", { value: "" }, "(none)"), ...options);
    this.$("default-model").value = project.default_model || "";
    this.shownProject = { title, classes: JSON.stringify(this.formClasses()), model: this.$("default-model").value };
  }

  classRow(c) {
    const row = el("div", { class: "row setup-class" },
      el("input", { type: "number", min: "1", max: "254", value: String(c.id), style: "width:56px", title: "class id" }),
      el("input", { type: "text", value: c.name, size: "10", title: "class name" }),
      el("input", { type: "color", value: c.color || "#000000", title: "class colour" }),
      el("label", { title: "count and measure this class's objects in every segmentation (instances.tif, objects.csv)" },
        el("input", { type: "checkbox", "data-setup": "objects", checked: c.objects === true }), "objects"),
      el("button", { type: "button", title: "remove this class", onclick: () => row.remove() }, "×"));
    return row;
  }

  formClasses() {
    return [...this.$("classes").querySelectorAll(".setup-class")].map((row) => {
      const [id, name, color, objects] = row.querySelectorAll("input");
      return { id: Number(id.value), name: name.value.trim(), color: color.value, objects: objects.checked };
    });
  }

  addClass() {
    const ids = [...this.$("classes").querySelectorAll("input[type=number]")].map((i) => Number(i.value));
    const id = Math.max(0, ...ids) + 1;
    this.$("classes").append(this.classRow({ id, name: `class ${id}`, color: "#ffd000" }));
  }

  // The change to send: only the fields that differ from what the file said.
  change() {
    const body = { version: this.version };
    const project = this.projectName();
    if (project !== this.shown.project) body.project = project;
    const voxel = this.voxelText();
    if (voxel.join() !== this.shown.voxel.join()) {
      if (voxel.every((v) => v !== "")) body.voxel_size = voxel.map(Number);
      else if (voxel.every((v) => v === "")) body.voxel_size = [];
      else throw new Error("give all three voxel sizes (z, y, x) or none");
    }
    if (project) {
      const classes = this.formClasses();
      // a project the file does not list yet is added with the classes shown
      if (!this.setups.has(project) || JSON.stringify(classes) !== this.shownProject.classes) body.classes = classes;
      const model = this.$("default-model").value;
      if (model !== this.shownProject.model) body.default_model = model;
    }
    return body;
  }

  async save() {
    const message = this.$("message");
    try {
      const change = this.change();
      if (Object.keys(change).length === 1) {
        message.dataset.state = "unchanged";
        message.textContent = "Nothing changed: setup.json left as it is.";
        return;
      }
      const saved = await sendJSON("PUT", this.url, change);
      this.show(saved);
      message.dataset.state = "saved";
      message.textContent = "Saved to setup.json.";
      if (this.onSaved) await this.onSaved(saved);
    } catch (error) {
      message.dataset.state = "error";
      message.textContent = error.message || String(error);
      if (error.status === 409) {
        // show what the file says now; the person makes the change again on top of it
        const current = await getJSON(this.url).catch(() => null);
        if (current) this.show(current);
      }
    }
  }

  bind() {
    this.$("add-class").onclick = () => this.addClass();
    this.$("save").onclick = () => this.save();
    // another project: show its own classes and default model, never the previous one's
    this.$("project").addEventListener("input", () => { if (this.projectName() !== this.shownProject?.title) this.showProject(); });
    this.root.addEventListener("toggle", () => { if (this.root.open) this.load().catch((e) => { this.$("message").textContent = e.message; }); });
  }
}
