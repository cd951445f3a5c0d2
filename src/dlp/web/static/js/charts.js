// Charts: a job's curves growing live (Server-Sent Events read with fetch, so the
// bearer token rides along), several jobs on one chart, per-column histograms (computed
// by the server while profiling) and a study's trials. Chart.js is vendored under
// /ui/static/vendor.
"use strict";

(function () {
  // Epoch-level curves: errors on the left axis, scores in [0, 1] on the right one;
  // the per-step running_* values are left out.
  const ERROR_METRICS = new Set(["train_loss", "val_loss", "val_rmse", "val_mae"]);
  const RATIO_METRICS = new Set(["val_accuracy", "val_f1", "val_r2", "val_auc"]);
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];
  const TERMINAL = new Set(["succeeded", "failed", "cancelled", "pruned"]);

  function color(index) {
    return COLORS[index % COLORS.length];
  }

  function lineChart(canvas, yTitle) {
    return new Chart(canvas, {
      type: "line",
      data: { datasets: [] },
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: { mode: "nearest", intersect: false },
        scales: {
          x: { type: "linear", title: { display: true, text: "epoch" }, ticks: { precision: 0 } },
          y: { title: { display: true, text: yTitle } },
        },
      },
    });
  }

  function seriesOf(chart, name, axis) {
    let series = chart.data.datasets.find((d) => d.label === name);
    if (!series) {
      series = {
        label: name, data: [], yAxisID: axis, borderColor: color(chart.data.datasets.length),
        backgroundColor: color(chart.data.datasets.length), pointRadius: 2, borderWidth: 2,
      };
      chart.data.datasets.push(series);
    }
    return series;
  }

  function* sseEvents(buffer) {
    for (const frame of buffer.split("\n\n")) {
      const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5));
      if (data.length) yield JSON.parse(data.join("\n"));
    }
  }

  async function readStream(path, onEvent) {
    const response = await DLP.api(path, { headers: { accept: "text/event-stream" } });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      pending += decoder.decode(value, { stream: true });
      const end = pending.lastIndexOf("\n\n");
      if (end < 0) continue;
      for (const event of sseEvents(pending.slice(0, end))) onEvent(event);
      pending = pending.slice(end + 2);
    }
  }

  function followJob(canvas) {
    const chart = lineChart(canvas, "loss");
    chart.options.scales.y1 = {
      position: "right", suggestedMin: 0, suggestedMax: 1, grid: { drawOnChartArea: false },
      title: { display: true, text: "score" },
    };
    const seen = new Set();
    const state = document.querySelector(".live-state");
    const log = document.getElementById("job-log");
    const summary = document.getElementById("job-summary");
    let status = null;
    let summaryTimer = null;

    // At most one summary reload each half second, however fast epochs end.
    function refreshSummary() {
      if (summaryTimer) return;
      summaryTimer = setTimeout(() => {
        summaryTimer = null;
        summary.dispatchEvent(new CustomEvent("dlp:refresh"));
      }, 500);
    }

    function onEvent(event) {
      const plotted = ERROR_METRICS.has(event.name) || RATIO_METRICS.has(event.name);
      if (event.type === "metric" && plotted && !seen.has(event.id) && event.value !== null) {
        seen.add(event.id);
        const axis = RATIO_METRICS.has(event.name) ? "y1" : "y";
        seriesOf(chart, event.name, axis).data.push({ x: event.epoch, y: event.value });
        canvas.dataset.points = String(seen.size);
        chart.update("none");
        refreshSummary();
      } else if (event.type === "status") {
        if (event.status !== status && status !== null) refreshSummary();
        status = event.status;
        canvas.dataset.status = status;
        state.textContent = TERMINAL.has(status) ? "Finished: " + status : "Live: " + status;
      } else if (event.type === "log" && log) {
        const line = document.createElement("li");
        line.textContent = event.message;
        log.appendChild(line);
        log.closest(".card").hidden = false;
      }
    }

    async function follow() {
      try {
        await readStream("/api/v1/training/jobs/" + canvas.dataset.jobId + "/events", onEvent);
      } catch (error) {
        state.textContent = "Connection lost (" + error.message + "); retrying…";
      }
      if (!TERMINAL.has(status)) setTimeout(follow, 2000);
    }
    follow();
  }

  async function compareJobs(canvas) {
    const ids = canvas.dataset.jobIds.split(",");
    const select = document.getElementById("compare-metric");
    const jobs = await Promise.all(ids.map(async (id) => ({
      job: await DLP.apiJson("/api/v1/training/jobs/" + id),
      metrics: (await DLP.apiJson("/api/v1/training/jobs/" + id + "/metrics")).items,
    })));
    const chart = lineChart(canvas, select.value);
    function draw() {
      chart.data.datasets = jobs.map(({ job, metrics }, index) => ({
        label: job.name + " · " + job.id.slice(0, 8),
        data: metrics.filter((m) => m.name === select.value).map((m) => ({ x: m.epoch, y: m.value })),
        borderColor: color(index), backgroundColor: color(index), pointRadius: 2,
      }));
      chart.options.scales.y.title.text = select.value;
      canvas.dataset.points = String(chart.data.datasets.reduce((n, d) => n + d.data.length, 0));
      chart.update();
    }
    select.addEventListener("change", draw);
    draw();
  }

  function parseCsv(text) {
    const rows = [];
    let row = [];
    let field = "";
    let quoted = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
        else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"') quoted = true;
      else if (c === ",") { row.push(field); field = ""; }
      else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        row.push(field); rows.push(row); row = []; field = "";
      } else field += c;
    }
    if (field !== "" || row.length) { row.push(field); rows.push(row); }
    return rows;
  }

  function edgeLabel(value) {
    return Number.isInteger(value) ? String(value) : value.toPrecision(3);
  }

  // The server's histogram: numeric bins over the column's range, or its most frequent
  // values followed by the count of all the others.
  function histogramChart(canvas) {
    const histogram = JSON.parse(canvas.dataset.histogram);
    const numeric = histogram.kind === "numeric";
    const labels = numeric
      ? histogram.counts.map((_, i) => edgeLabel(histogram.edges[i]) + " – " + edgeLabel(histogram.edges[i + 1]))
      : histogram.values.map((value) => (value === "" ? "(empty)" : value));
    const heights = [...histogram.counts];
    const colors = heights.map(() => "#93c5fd");
    if (!numeric && histogram.other > 0) {
      labels.push("(other)");
      heights.push(histogram.other);
      colors.push("#d1d5db");
    }
    new Chart(canvas, {
      type: "bar",
      data: { labels, datasets: [{ data: heights, backgroundColor: colors, barPercentage: numeric ? 1 : 0.8, categoryPercentage: 1 }] },
      options: {
        animation: false, responsive: false,
        plugins: { legend: { display: false } },
        scales: { x: { display: false }, y: { display: false, beginAtZero: true } },
      },
    });
  }

  function studyScatter(canvas) {
    const numbers = JSON.parse(canvas.dataset.trials);
    const values = JSON.parse(canvas.dataset.values);
    const states = JSON.parse(canvas.dataset.states);
    const groups = {};
    numbers.forEach((number, i) => {
      if (number === null || values[i] === null) return;
      (groups[states[i]] = groups[states[i]] || []).push({ x: number, y: values[i] });
    });
    new Chart(canvas, {
      type: "scatter",
      data: {
        datasets: Object.entries(groups).map(([state, data], i) => ({
          label: state, data, backgroundColor: color(i), pointRadius: 4,
        })),
      },
      options: {
        animation: false, maintainAspectRatio: false,
        scales: {
          x: { title: { display: true, text: "trial" }, ticks: { precision: 0 } },
          y: { title: { display: true, text: canvas.dataset.metric } },
        },
      },
    });
  }

  function forgetDetachedCharts() {
    Object.values(Chart.instances).forEach((chart) => {
      if (!chart.canvas.isConnected) chart.destroy();
    });
  }

  function start(root) {
    forgetDetachedCharts();
    const find = (selector) => (root.matches && root.matches(selector) ? root : root.querySelector(selector));
    const table = find("#profile");
    if (table) table.querySelectorAll("canvas[data-histogram]").forEach(histogramChart);
    const study = find("#study-chart");
    if (study) studyScatter(study);
  }

  document.addEventListener("htmx:load", (event) => start(event.detail.elt));
  window.DLPCharts = { parseCsv };

  document.body.addEventListener("dlp:ready", () => {
    const job = document.getElementById("job-chart");
    if (job && !job.dataset.following) {
      job.dataset.following = "true";
      followJob(job);
    }
    const compare = document.getElementById("compare-chart");
    if (compare && !compare.dataset.drawn) {
      compare.dataset.drawn = "true";
      compareJobs(compare).catch((error) => DLP.showError(compare, error.message));
    }
  });
})();
