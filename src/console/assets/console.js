// The console's only script: draws each balance chart from the points its element carries
// (uPlot), on load and whenever htmx swaps new content in, and has htmx show a failed update's
// error in place. Everything else works without it.

(() => {
  const SECOND_MS = 1000;

  function draw(canvas) {
    if (typeof uPlot !== "function") return;
    const { points } = JSON.parse(canvas.dataset.points || "{}");
    canvas.replaceChildren();
    if (!points || points.length === 0) {
      canvas.textContent = "No ledger entry in this range.";
      return;
    }
    // Display only: amounts arrive as decimal text (exact); a chart plots them as numbers.
    const data = [points.map((p) => p.t / SECOND_MS), points.map((p) => Number(p.available)), points.map((p) => Number(p.frozen))];
    const options = {
      width: Math.max(280, canvas.clientWidth),
      height: 240,
      series: [{}, { label: "available", stroke: "#1f6feb", width: 2 }, { label: "frozen", stroke: "#bf8700", width: 2 }],
      scales: { x: { time: true } },
      // In UTC, as every other time the console shows (uPlot would use the browser's zone).
      tzDate: (seconds) => uPlot.tzDate(new Date(seconds * SECOND_MS), "Etc/UTC"),
      axes: [{}, { size: 80 }],
    };
    const chart = new uPlot(options, data, canvas);
    new ResizeObserver(() => chart.setSize({ width: Math.max(280, canvas.clientWidth), height: 240 })).observe(canvas);
  }

  function drawAll(root) {
    for (const canvas of root.querySelectorAll(".chart-canvas[data-points]")) draw(canvas);
  }

  // A failed update comes back as the part's error (an HTML answer of the console): shown in place,
  // where htmx would otherwise leave the page as it was and the click seem to do nothing.
  document.addEventListener("htmx:beforeSwap", (event) => {
    const xhr = event.detail?.xhr;
    if (xhr && xhr.status >= 400 && (xhr.getResponseHeader("content-type") ?? "").startsWith("text/html")) event.detail.shouldSwap = true;
  });
  document.addEventListener("DOMContentLoaded", () => drawAll(document));
  document.addEventListener("htmx:afterSwap", (event) => drawAll(event.detail?.elt?.parentElement ?? document));
})();
