// The viewer's image controls: brightness and contrast (a filter on the views), the display
// window (low and high grey level, kept in the store and applied as the image layer's palette),
// the histogram of the slice on screen with the window drawn over it, and "Auto".
import { $ } from "./common.js";
import { AUTO_PERCENTILES, drawHistogram, percentile, viewHistogram, windowPalette } from "./contrast.js";
import { updateLayer } from "./viewer_layers.js";

export function bindContrast(store, views, { showError }) {
  let histogram = null, histogramTimer = null;
  const rawLayer = () => store.get().layers.find((l) => l.kind === "raw");

  function showWindow([low, high]) {
    // a field being typed in keeps its text ("" and "0" are both 0)
    if (Number($("window-low").value) !== low) $("window-low").value = String(low);
    if (Number($("window-high").value) !== high) $("window-high").value = String(high);
    if (rawLayer()) updateLayer(store, "raw", { palette: windowPalette(low, high) });
    if (histogram) drawHistogram($("histogram"), histogram, low, high);
    $("viewer").dataset.window = `${low}-${high}`;
  }

  function applyFilter() {
    const filter = `brightness(${$("brightness").value / 100}) contrast(${$("contrast").value / 100})`;
    for (const view of Object.values(views)) { view.filter = filter; view.requestDraw(); }
  }

  async function refreshHistogram() {
    histogram = await viewHistogram(views.z, rawLayer());
    const [low, high] = store.get().window;
    drawHistogram($("histogram"), histogram, low, high);
  }

  async function autoContrast() {
    await refreshHistogram();
    const low = percentile(histogram, AUTO_PERCENTILES[0]);
    store.set({ window: [low, Math.max(percentile(histogram, AUTO_PERCENTILES[1]), low + 1)] });
  }

  store.subscribe((s) => s.window, showWindow);
  const histogramSoon = () => {
    clearTimeout(histogramTimer);
    histogramTimer = setTimeout(() => refreshHistogram().catch(() => {}), 200);
  };
  store.subscribe((s) => s.cursor[0], histogramSoon);
  $("brightness").addEventListener("input", applyFilter);
  $("contrast").addEventListener("input", applyFilter);
  for (const id of ["window-low", "window-high"]) {
    $(id).addEventListener("input", () => store.set({ window: [Number($("window-low").value), Number($("window-high").value)] }));
  }
  $("auto-contrast").onclick = () => autoContrast().catch(showError);
  showWindow(store.get().window);
  applyFilter();
  histogramSoon();
}
