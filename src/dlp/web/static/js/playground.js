// The prediction playground: a row typed into a form, the rows of a CSV file, or
// dropped images, sent to POST /api/v1/models/{id}/predict; the answer as a table.
"use strict";

(function () {
  const MAX_ROWS = 1000;

  function schema() {
    const form = document.getElementById("row-form");
    return form ? JSON.parse(form.dataset.columns) : [];
  }

  function typed(value, dtype) {
    if (value === undefined || value === "") return undefined;
    if (dtype === "integer" || dtype === "number") return Number(value);
    if (dtype === "boolean") return value === "true" || value === "1";
    return value;
  }

  function rowFrom(get) {
    const row = {};
    for (const { name, dtype } of schema()) {
      const value = typed(get(name), dtype);
      if (value !== undefined) row[name] = value;
    }
    return row;
  }

  function readAsBase64(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
      reader.onerror = () => reject(new Error("could not read " + file.name));
      reader.readAsDataURL(file);
    });
  }

  async function inputsOf(form) {
    if (form.id === "row-form") {
      return [rowFrom((name) => form.elements.namedItem(name).value.trim())];
    }
    if (form.id === "text-form") return [form.elements.text.value];
    if (form.id === "image-form") return Promise.all([...form.elements.images.files].map(readAsBase64));
    const [header, ...rows] = DLPCharts.parseCsv(await form.elements.file.files[0].text());
    const complete = rows.filter((r) => r.length === header.length);
    if (complete.length > MAX_ROWS) throw new Error("at most " + MAX_ROWS + " rows a request");
    return complete.map((r) => rowFrom((name) => r[header.indexOf(name)]));
  }

  function cell(row, text, tag = "td") {
    const element = document.createElement(tag);
    element.textContent = text;
    row.appendChild(element);
  }

  function format(value) {
    return typeof value === "number" ? Number(value.toPrecision(4)).toString() : String(value);
  }

  function show(answer, classes) {
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    ["#", "prediction", ...classes.map((c) => "p(" + c + ")")].forEach((t) => cell(head, t, "th"));
    const body = table.createTBody();
    answer.predictions.forEach((prediction, i) => {
      const row = body.insertRow();
      cell(row, String(i + 1));
      cell(row, format(prediction));
      (answer.probabilities ? answer.probabilities[i] : []).forEach((p) => cell(row, p.toFixed(3)));
    });
    const wrap = document.createElement("div");
    wrap.className = "table-wrap";
    wrap.appendChild(table);
    const note = document.createElement("p");
    note.className = "muted";
    note.textContent = "Answered by version " + answer.model_version + ".";
    const box = document.getElementById("prediction");
    box.replaceChildren(wrap, note);
    box.dataset.predictions = JSON.stringify(answer.predictions);
    document.getElementById("prediction-card").hidden = false;
  }

  async function predict(form) {
    const playground = document.getElementById("playground");
    const template = document.getElementById("classes");
    const classes = template ? JSON.parse(template.innerHTML) : [];
    const answer = await DLP.apiJson("/api/v1/models/" + playground.dataset.modelId + "/predict", {
      method: "POST", json: { inputs: await inputsOf(form) },
    });
    show(answer, answer.probabilities ? classes : []);
  }

  const FORMS = new Set(["row-form", "text-form", "image-form", "csv-form"]);

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!FORMS.has(form.id)) return;
    event.preventDefault();
    const button = form.querySelector("[type=submit]");
    button.disabled = true;
    DLP.showError(form, "");
    try {
      await predict(form);
    } catch (error) {
      DLP.showError(form, error.message);
    } finally {
      button.disabled = false;
    }
  });

  document.addEventListener("dragover", (event) => {
    if (event.target.closest(".dropzone")) event.preventDefault();
  });

  document.addEventListener("drop", (event) => {
    const zone = event.target.closest(".dropzone");
    if (!zone) return;
    event.preventDefault();
    zone.querySelector("input[type=file]").files = event.dataTransfer.files;
  });
})();
