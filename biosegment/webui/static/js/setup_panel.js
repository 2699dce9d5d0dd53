// The "Dataset setup" panel of the viewer: the dataset's project and voxel size, the project's
// classes (name and colour) and default model, saved into setup.json through the API. The
// panel sends back the file's version: when the file changed on disk meanwhile the server
// refuses, and the panel says so and shows the file as it is now.
import { el, getJSON, sendJSON, enc } from "./common.js";

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
    this.$("project").value = current.dataset.project || "";
    this.$("projects").replaceChildren(...current.projects.map((p) => el("option", { value: p })));
    const voxel = current.dataset.voxel_size || ["", "", ""];
    ["z", "y", "x"].forEach((axis, i) => { this.$(`voxel-${axis}`).value = voxel[i] ?? ""; });
    const project = current.project || { classes: [], default_model: "" };
    this.$("classes").replaceChildren(...project.classes.map((c) => this.classRow(c)));
    this.$("default-model").replaceChildren(el("option", { value: "" }, "(none)"),
      ...modelNames.map((n) => el("option", { value: n, title: n }, n)));
    this.$("default-model").value = project.default_model || "";
  }

  classRow(c) {
    const row = el("div", { class: "row setup-class" },
      el("input", { type: "number", min: "1", max: "254", value: String(c.id), style: "width:56px", title: "class id" }),
      el("input", { type: "text", value: c.name, size: "10", title: "class name" }),
      el("input", { type: "color", value: c.color, title: "class colour" }),
      el("button", { type: "button", title: "remove this class", onclick: () => row.remove() }, "×"));
    return row;
  }

  addClass() {
    const ids = [...this.$("classes").querySelectorAll("input[type=number]")].map((i) => Number(i.value));
    const id = Math.max(0, ...ids) + 1;
    this.$("classes").append(this.classRow({ id, name: `class ${id}`, color: "#ffd000" }));
  }

  change() {
    const voxel = ["z", "y", "x"].map((axis) => this.$(`voxel-${axis}`).value.trim());
    const body = { version: this.version, project: this.$("project").value.trim() };
    if (voxel.every((v) => v !== "")) body.voxel_size = voxel.map(Number);
    else if (voxel.every((v) => v === "")) body.voxel_size = [];
    else throw new Error("give all three voxel sizes (z, y, x) or none");
    if (body.project) {
      body.classes = [...this.$("classes").querySelectorAll(".setup-class")].map((row) => {
        const [id, name, color] = row.querySelectorAll("input");
        return { id: Number(id.value), name: name.value.trim(), color: color.value };
      });
      body.default_model = this.$("default-model").value;
    }
    return body;
  }

  async save() {
    const message = this.$("message");
    try {
      const saved = await sendJSON("PUT", this.url, this.change());
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
    this.root.addEventListener("toggle", () => { if (this.root.open) this.load().catch((e) => { this.$("message").textContent = e.message; }); });
  }
}
