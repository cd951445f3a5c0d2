// The browser's credentials: the access/refresh pair from POST /api/v1/auth/login,
// kept in localStorage, attached to every htmx request and every DLP.api() call, and
// refreshed shortly before the access token expires (or after a 401).
"use strict";

(function () {
  const KEYS = { access: "dlp.access", refresh: "dlp.refresh", expires: "dlp.expires" };
  const EARLY_MS = 30000;
  let refreshing = null;

  function store(pair) {
    localStorage.setItem(KEYS.access, pair.access_token);
    localStorage.setItem(KEYS.refresh, pair.refresh_token);
    localStorage.setItem(KEYS.expires, String(Date.now() + pair.expires_in * 1000));
  }

  function clear() {
    Object.values(KEYS).forEach((key) => localStorage.removeItem(key));
  }

  function toLogin() {
    const back = location.pathname + location.search;
    location.assign("/ui/login?next=" + encodeURIComponent(back));
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      return body.message || response.statusText;
    } catch (_ignored) {
      return response.status + " " + response.statusText;
    }
  }

  async function spendRefreshToken() {
    const spent = localStorage.getItem(KEYS.refresh);
    if (!spent) return false;
    const response = await fetch("/api/v1/auth/refresh", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: spent }),
    });
    if (!response.ok) {
      // Another tab may have spent it a moment ago and stored the new pair.
      if (localStorage.getItem(KEYS.refresh) !== spent) return true;
      clear();
      return false;
    }
    store(await response.json());
    return true;
  }

  // Refresh tokens rotate and reusing a spent one revokes the whole family, so one
  // refresh at a time, across tabs too (Web Locks), re-checking after the wait.
  function refresh(force) {
    if (!refreshing) {
      const run = async () => {
        const expires = Number(localStorage.getItem(KEYS.expires) || 0);
        if (!force && expires - Date.now() > EARLY_MS) return true;
        return spendRefreshToken();
      };
      const locked = navigator.locks ? navigator.locks.request("dlp-refresh", run) : run();
      refreshing = locked.finally(() => { refreshing = null; });
    }
    return refreshing;
  }

  async function ensureSignedIn() {
    if (!localStorage.getItem(KEYS.refresh)) return false;
    return refresh(false);
  }

  async function api(path, options = {}, retried = false) {
    await ensureSignedIn();
    const headers = new Headers(options.headers || {});
    const token = localStorage.getItem(KEYS.access);
    if (token) headers.set("Authorization", "Bearer " + token);
    if (options.json !== undefined) {
      headers.set("content-type", "application/json");
      options = { ...options, body: JSON.stringify(options.json) };
    }
    const response = await fetch(path, { ...options, headers });
    if (response.status === 401 && !retried && (await refresh(true))) {
      return api(path, options, true);
    }
    if (response.status === 401) toLogin();
    if (!response.ok) throw new Error(await errorMessage(response));
    return response.status === 204 ? null : response;
  }

  async function apiJson(path, options) {
    const response = await api(path, options);
    return response ? response.json() : null;
  }

  // The alert box nearest to ``element``: its own, its card's, or the page's.
  function showError(element, message) {
    let box = null;
    for (let node = element; node && node.querySelector && !box; node = node.parentElement) {
      box = node.querySelector(".error[role=alert]");
    }
    box = box || document.querySelector(".flash");
    box.textContent = message;
    box.hidden = !message;
  }

  async function signOut() {
    const token = localStorage.getItem(KEYS.refresh);
    clear();
    if (token) {
      await fetch("/api/v1/auth/logout", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: token }),
      });
    }
    location.assign("/ui/login");
  }

  function ready() {
    document.body.dispatchEvent(new CustomEvent("dlp:ready"));
  }

  document.addEventListener("htmx:configRequest", (event) => {
    const token = localStorage.getItem(KEYS.access);
    if (token) event.detail.headers["Authorization"] = "Bearer " + token;
  });

  document.addEventListener("htmx:responseError", async (event) => {
    const response = event.detail.xhr;
    if (response.status === 401) {
      if (await refresh(true)) ready();
      else toLogin();
      return;
    }
    let message = response.status + " " + response.statusText;
    try {
      message = JSON.parse(response.responseText).message || message;
    } catch (_ignored) { /* not JSON: keep the status line */ }
    event.detail.target.innerHTML = "";
    const notice = document.createElement("p");
    notice.className = "error";
    notice.textContent = message;
    event.detail.target.appendChild(notice);
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-action='sign-out']")) signOut();
  });

  document.addEventListener("DOMContentLoaded", async () => {
    if (document.body.dataset.public) return;
    if (!(await ensureSignedIn())) {
      toLogin();
      return;
    }
    ready();
    setInterval(() => refresh(false), EARLY_MS / 2);
  });

  function token() {
    return localStorage.getItem(KEYS.access);
  }

  window.DLP = { api, apiJson, store, token, showError, errorMessage, refresh };
})();
