// Draws each usage chart with Chart.js from /ui/usage/data and redraws it when its range changes.
(function () {
  "use strict";
  const COLORS = ["#2563eb", "#b42318", "#15803d", "#a16207"];
  async function load(fig, chart) {
    const status = fig.querySelector(".status");
    const range = fig.querySelector("select").value;
    status.textContent = "Loading…";
    try {
      const res = await fetch(`/ui/usage/data?chart=${fig.dataset.chart}&range=${range}`,
        { credentials: "same-origin" });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const data = await res.json();
      const names = Object.keys(data.series);
      chart.data.labels = data.labels;
      chart.data.datasets = names.map((n, i) => ({
        label: n, data: data.series[n], borderColor: COLORS[i], backgroundColor: COLORS[i],
        pointRadius: 0, stepped: fig.dataset.kind === "line" ? "before" : false,
      }));
      chart.update();
      const empty = data.labels.length === 0 ||
        names.every((n) => data.series[n].every((v) => v === 0));
      status.textContent = empty ? "No data in this range yet." : "";
      fig.dataset.loaded = "true";
    } catch (err) {
      status.textContent = `Could not load this chart (${err.message}).`;
      fig.dataset.loaded = "error";
    }
  }
  document.querySelectorAll("figure[data-chart]").forEach((fig) => {
    const chart = new Chart(fig.querySelector("canvas"), {
      type: fig.dataset.kind, data: { labels: [], datasets: [] },
      options: { responsive: true, animation: false, scales: { y: { beginAtZero: true } } },
    });
    fig.querySelector("select").addEventListener("change", () => load(fig, chart));
    load(fig, chart);
  });
})();
