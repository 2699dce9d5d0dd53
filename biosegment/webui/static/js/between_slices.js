// The viewer's "between slices" buttons: copy the labels of the slice before into this one, and
// fill the slices between two painted ones (interpolation.js does the work; nothing painted is
// ever overwritten). The default ends are the painted slices nearest below and above.
import { $ } from "./common.js";
import { fetchSlice } from "./annotation_slices.js";
import { interpolateBetween } from "./interpolation.js";
import { editingLayer, layerKey, updateLayer } from "./viewer_layers.js";

function say(text) { $("interp-message").textContent = text; }

async function copyPrevious(store, editor) {
  const { dataset, editing, cursor: [z] } = store.get();
  if (!editing) { say("choose or create an annotation first"); return; }
  if (z === 0) { say("slice 0 has no slice before it"); return; }
  await editor.flush();
  const source = await fetchSlice(dataset, editing, z - 1);
  const count = editor.applyLabels(source);
  say(count ? `copied ${count} pixels from slice ${z - 1}` : `slice ${z - 1} has nothing to copy here`);
}

function suggestEnds(state) {
  const slices = editingLayer(state).slices || [];
  const z = state.cursor[0];
  const below = slices.filter((s) => s <= z), above = slices.filter((s) => s > z);
  if ($("interp-from").value === "" && below.length) $("interp-from").value = String(Math.max(...below));
  if ($("interp-to").value === "" && above.length) $("interp-to").value = String(Math.min(...above));
}

async function interpolate(store, editor) {
  const { dataset, editing, shape } = store.get();
  if (!editing) { say("choose or create an annotation first"); return; }
  suggestEnds(store.get());
  const za = Number($("interp-from").value), zb = Number($("interp-to").value);
  if ($("interp-from").value === "" || $("interp-to").value === "") { say("give the two painted slices"); return; }
  await editor.flush();
  say(`filling the slices between ${za} and ${zb} …`);
  try {
    const count = await interpolateBetween({ dataset, annotation: editing, za, zb,
      height: shape[1], width: shape[2], onSlice: (z) => say(`filled slice ${z}`) });
    say(count ? `filled the slices between ${Math.min(za, zb)} and ${Math.max(za, zb)}: ${count} pixels`
      : `nothing to fill: the objects on slices ${za} and ${zb} do not overlap (or the slices between are painted); paint a slice in between first`);
    $("viewer").dataset.interpolated = `${za}-${zb}`;
    await editor.load(store.get().cursor[0]);
    const layer = editingLayer(store.get());
    if (layer.name) updateLayer(store, layerKey(layer), { version: String(Date.now()) });
  } catch (error) { say(error.message || String(error)); }
}

export function bindBetweenSlices(store, editor) {
  $("copy-previous").onclick = () => copyPrevious(store, editor).catch((e) => say(e.message));
  $("interpolate").onclick = () => interpolate(store, editor);
}
