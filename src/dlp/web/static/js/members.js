// The members page: add a member, change a role, remove a member (or leave). Each action
// calls the JSON API, then reloads the member table. Listeners sit on the document because
// htmx swaps the table and its controls in.
"use strict";

(function () {
  const MEMBERS = "/api/v1/organizations/current/members";

  function reloadTable() {
    const table = document.getElementById("members");
    if (table) table.dispatchEvent(new CustomEvent("dlp:refresh"));
  }

  async function run(control, request, undo) {
    DLP.showError(control, "");
    control.disabled = true;
    try {
      await request();
    } catch (error) {
      if (undo) undo();
      control.disabled = false;
      DLP.showError(control, error.message);
      return false;
    }
    reloadTable();
    return true;
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.id !== "member-form") return;
    event.preventDefault();
    const data = new FormData(form);
    const member = { username: String(data.get("username") || "").trim(), role: data.get("role") };
    run(form.querySelector("[type=submit]"), () => DLP.api(MEMBERS, { method: "POST", json: member }));
  });

  document.addEventListener("change", (event) => {
    const select = event.target.closest("select[data-action='member-role']");
    if (!select) return;
    run(
      select,
      () => DLP.api(MEMBERS + "/" + select.dataset.userId, { method: "PATCH", json: { role: select.value } }),
      () => { select.value = select.dataset.role; },
    );
  });

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-action='remove-member']");
    if (!button) return;
    const leaving = button.dataset.self === "true";
    const question = leaving
      ? "Leave this organization?"
      : "Remove " + button.dataset.username + " from this organization?";
    if (!window.confirm(question)) return;
    const done = await run(button, () => DLP.api(MEMBERS + "/" + button.dataset.userId, { method: "DELETE" }));
    if (done && leaving) location.assign("/");
  });
})();
