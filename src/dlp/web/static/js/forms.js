// Forms that change things: each one calls the JSON API, then moves on or refreshes
// the fragment it changed. Listeners sit on the document because htmx swaps forms in.
"use strict";

(function () {
  function values(form) {
    const data = {};
    new FormData(form).forEach((value, key) => {
      if (typeof value === "string" && value.trim() !== "") data[key] = value.trim();
    });
    return data;
  }

  function safeNext() {
    const next = new URLSearchParams(location.search).get("next") || "";
    return next.startsWith("/") && !next.startsWith("//") ? next : "/";
  }

  function refreshFragment(selector) {
    const element = document.querySelector(selector);
    if (element) element.dispatchEvent(new CustomEvent("dlp:refresh"));
  }

  async function signIn(username, password) {
    const response = await fetch("/api/v1/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    if (!response.ok) throw new Error(await DLP.errorMessage(response));
    DLP.store(await response.json());
  }

  async function login(form) {
    const data = values(form);
    await signIn(data.username, data.password);
    location.assign(safeNext());
  }

  async function register(form) {
    const data = values(form);
    const response = await fetch("/api/v1/auth/register", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(data),
    });
    if (!response.ok) throw new Error(await DLP.errorMessage(response));
    await signIn(data.username, data.password);
    location.assign("/ui/datasets");
  }

  // XMLHttpRequest rather than fetch: only it reports upload progress.
  async function upload(form) {
    await DLP.refresh(false);
    const body = new FormData();
    const data = values(form);
    body.append("file", form.elements.file.files[0]);
    if (data.name) body.append("name", data.name);
    if (data.kind) body.append("kind", data.kind);
    const progress = document.querySelector(".upload-progress");
    const bar = progress.querySelector("progress");
    const label = progress.querySelector(".upload-label");
    progress.hidden = false;
    const answer = await new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("POST", "/api/v1/datasets");
      request.setRequestHeader("Authorization", "Bearer " + DLP.token());
      request.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        const percent = Math.round((100 * event.loaded) / event.total);
        bar.value = percent;
        label.textContent = percent < 100 ? percent + "%" : "Checking and profiling…";
      });
      request.addEventListener("load", () => {
        let body = {};
        try { body = JSON.parse(request.responseText); } catch (_ignored) { /* keep {} */ }
        if (request.status === 201) resolve(body);
        else reject(new Error(body.message || request.status + " " + request.statusText));
      });
      request.addEventListener("error", () => reject(new Error("the upload failed: network error")));
      request.send(body);
    }).finally(() => { progress.hidden = true; bar.value = 0; });
    location.assign("/ui/datasets/" + answer.id);
  }

  async function train(form) {
    const data = values(form);
    const request = {
      dataset_id: data.dataset_id,
      task: data.task || "classification",
      model: { type: data.model_type || "auto" },
      training: {
        epochs: Number(data.epochs),
        batch_size: Number(data.batch_size),
        learning_rate: Number(data.learning_rate),
        early_stopping_patience: Number(data.early_stopping_patience),
      },
    };
    for (const key of ["target", "text_column", "name"]) if (data[key]) request[key] = data[key];
    const job = await DLP.apiJson("/api/v1/training/jobs", { method: "POST", json: request });
    location.assign("/ui/jobs/" + job.id);
  }

  async function startStudy(form) {
    const data = values(form);
    const request = {
      dataset_id: data.dataset_id,
      task: data.task || "classification",
      model: { type: data.model_type || "auto" },
      n_trials: Number(data.n_trials),
      parallelism: Number(data.parallelism),
    };
    if (data.max_minutes) request.max_minutes = Number(data.max_minutes);
    for (const key of ["target", "text_column"]) if (data[key]) request[key] = data[key];
    const study = await DLP.apiJson("/api/v1/tuning/studies", { method: "POST", json: request });
    location.assign("/ui/studies/" + study.id);
  }

  function registryPath() {
    return "/api/v1/registry/" + encodeURIComponent(document.getElementById("registry").dataset.name);
  }

  async function pointAlias(form) {
    const data = values(form);
    await DLP.api(registryPath() + "/aliases/" + encodeURIComponent(data.alias), {
      method: "PUT", json: { version: Number(data.version) },
    });
    refreshFragment("#registry");
  }

  async function splitTraffic(form) {
    const weights = {};
    Object.entries(values(form)).forEach(([version, weight]) => {
      if (Number(weight) > 0) weights[version] = Number(weight);
    });
    await DLP.api(registryPath() + "/traffic", { method: "PUT", json: weights });
    refreshFragment("#registry");
  }

  const SUBMITS = {
    "login-form": login,
    "register-form": register,
    "upload-form": upload,
    "train-form": train,
    "study-form": startStudy,
    "alias-form": pointAlias,
    "traffic-form": splitTraffic,
  };

  const CLICKS = {
    "cancel-job": async (button) => {
      await DLP.api("/api/v1/training/jobs/" + button.dataset.jobId + "/cancel", { method: "POST" });
      refreshFragment("#job-summary");
    },
    "delete-alias": async (button) => {
      await DLP.api(registryPath() + "/aliases/" + encodeURIComponent(button.dataset.alias), {
        method: "DELETE",
      });
      refreshFragment("#registry");
    },
    "clear-traffic": async () => {
      await DLP.api(registryPath() + "/traffic", { method: "DELETE" });
      refreshFragment("#registry");
    },
  };

  async function guarded(scope, button, action) {
    DLP.showError(scope, "");
    if (button) button.disabled = true;
    try {
      await action();
    } catch (error) {
      DLP.showError(scope, error.message);
    } finally {
      if (button) button.disabled = false;
    }
  }

  document.addEventListener("submit", (event) => {
    const handler = SUBMITS[event.target.id];
    if (!handler) return;
    event.preventDefault();
    const form = event.target;
    guarded(form, form.querySelector("[type=submit]"), () => handler(form));
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action]");
    const handler = button && CLICKS[button.dataset.action];
    if (!handler) return;
    guarded(button, button, () => handler(button));
  });
})();
