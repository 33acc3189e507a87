// rulewatch pages: small progressive enhancements. Every page works without this script;
// with it, conditions are checked as you type, drafts can be test-run, and "verify now"
// follows its task until the result arrives.
"use strict";

(function () {
  const POLL_MS = 500;
  const POLL_LIMIT = 240; // two minutes

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, value);
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function badge(status) {
    const label = status === "nodata" ? "no data" : status;
    return el("span", { class: "badge " + status, "data-status": status }, label);
  }

  async function json(url, options) {
    const response = await fetch(url, Object.assign({ credentials: "same-origin" }, options));
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    return { status: response.status, body: body };
  }

  // Follow a task by id until it ends; onState(state, body) is called on every answer.
  async function follow(taskUrl, taskId, onState) {
    const url = taskUrl.replace("TASK", encodeURIComponent(taskId));
    for (let i = 0; i < POLL_LIMIT; i++) {
      const answer = await json(url, { headers: { Accept: "application/json" } });
      const state = answer.body && answer.body.state ? answer.body.state : "UNKNOWN";
      onState(state, answer.body);
      if (["SUCCESS", "FAILURE", "REVOKED"].includes(state)) return answer.body;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    onState("TIMEOUT", null);
    return null;
  }

  const STATE_TEXT = {
    PENDING: "Queued on the interactive queue, waiting for a worker…",
    RECEIVED: "A worker received it…",
    STARTED: "Verifying now…",
    RETRY: "Retrying after a database or broker error…",
    TIMEOUT: "No result after two minutes: is a worker running? (rulewatch worker)",
  };

  function outcomesTable(result) {
    const rows = (result.conditions || []).map((c) => {
      const mark = c.ok ? "✓" : "✗";
      return el("tr", { class: "outcome" },
        el("td", { class: c.ok ? "ok-yes" : "ok-no" }, mark),
        el("td", {}, el("code", {}, c.condition)),
        el("td", { class: "resolved" }, el("code", {}, c.resolved)),
        el("td", { class: "muted" }, c.reason || ""));
    });
    return el("table", { class: "outcomes" },
      el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, "Condition"),
        el("th", {}, "Resolved"), el("th", {}, "Note"))),
      el("tbody", {}, ...rows));
  }

  function resultSummary(result) {
    const parts = [badge(result.status), " in " + Math.round(result.duration_ms || 0) + " ms"];
    if (result.error) parts.push(": " + result.error);
    return el("p", {}, ...parts);
  }

  // Forms that ask before they act (delete, revoke...).
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  // Rule editor: only the chosen kind's fields, conditions checked as you type, test run.
  const editor = document.getElementById("rule-form");
  if (editor) {
    const kind = editor.querySelector("select[name=kind]");
    const showKind = () => {
      for (const set of editor.querySelectorAll("fieldset[data-kind]")) {
        set.hidden = set.dataset.kind !== kind.value;
      }
    };
    kind.addEventListener("change", showKind);
    showKind();

    const conditions = editor.querySelector("textarea[name=conditions]");
    const feedback = document.getElementById("conditions-feedback");
    const serverError = document.getElementById("conditions-error");
    let timer = null;
    let asked = 0;
    const check = async () => {
      const numbered = conditions.value.split("\n").map((l, i) => [i + 1, l.trim()]).filter(([, l]) => l);
      const lines = numbered.map(([, l]) => l);
      const ticket = ++asked;
      if (!lines.length) { feedback.replaceChildren(); return; }
      const answer = await json(editor.dataset.checkUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ kind: kind.value, conditions: lines }),
      });
      if (ticket !== asked || !answer.body || !answer.body.conditions) return;
      const items = answer.body.conditions.map((c, i) => c.ok
        ? el("li", { class: "good" }, "✓ line " + numbered[i][0] + ": " + c.condition)
        : el("li", { class: "bad" }, "✗ line " + numbered[i][0] + ": " + c.error));
      feedback.replaceChildren(...items);
      const bad = answer.body.conditions.some((c) => !c.ok);
      conditions.setAttribute("aria-invalid", bad ? "true" : "false");
      if (!bad && serverError) serverError.hidden = true;
    };
    const later = () => { clearTimeout(timer); timer = setTimeout(check, 300); };
    conditions.addEventListener("input", later);
    kind.addEventListener("change", later);
    if (conditions.value.trim()) check();

    const testButton = document.getElementById("test-run");
    const testResult = document.getElementById("test-result");
    testButton.hidden = false;
    testButton.addEventListener("click", async () => {
      testButton.disabled = true;
      testResult.hidden = false;
      const status = el("p", { class: "progress", "data-state": "PENDING" }, "Sending the draft…");
      testResult.replaceChildren(el("h2", {}, "Test run"), status);
      try {
        const answer = await json(editor.dataset.testUrl, {
          method: "POST", body: new FormData(editor), headers: { Accept: "application/json" },
        });
        if (answer.status !== 202) {
          const errors = answer.body && answer.body.errors ? answer.body.errors : {};
          const lines = Object.entries(errors).map(([f, m]) => el("li", {}, f + ": " + [].concat(m).join("; ")));
          status.dataset.state = "FAILURE";
          status.replaceChildren("The draft is not valid yet:", el("ul", {}, ...lines));
          return;
        }
        const done = await follow(editor.dataset.taskUrl, answer.body.task_id, (state) => {
          status.dataset.state = state;
          status.textContent = STATE_TEXT[state] || state;
        });
        if (done && done.state === "SUCCESS" && done.result) {
          status.replaceChildren(el("span", {}, "Nothing was saved. Outcome: "), ...resultSummary(done.result).childNodes);
          testResult.append(outcomesTable(done.result));
        } else if (done && done.result && done.result.error) {
          status.textContent = "The test run failed: " + done.result.error;
        }
      } finally {
        testButton.disabled = false;
      }
    });
  }

  // Rule page: "verify now" without leaving the page, following the task to its result.
  const progress = document.getElementById("verify-progress");
  const verifyForm = document.getElementById("verify-form");
  const track = async (taskId) => {
    progress.hidden = false;
    const done = await follow(progress.dataset.taskUrl, taskId, (state) => {
      progress.dataset.state = state;
      progress.textContent = (STATE_TEXT[state] || state) + " (task " + taskId + ")";
    });
    if (done && done.state === "SUCCESS" && done.result) {
      const link = el("a", { href: window.location.pathname }, "Reload to see it in the history");
      progress.replaceChildren("Verified: ", ...resultSummary(done.result).childNodes, " ", link);
    } else if (done && done.state === "FAILURE") {
      progress.textContent = "The verification task failed: " + ((done.result && done.result.error) || "unknown error");
    }
  };
  if (progress && progress.dataset.taskId && !["SUCCESS", "FAILURE"].includes(progress.dataset.state)) {
    track(progress.dataset.taskId);
  }
  if (verifyForm && progress) {
    verifyForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = verifyForm.querySelector("button");
      button.disabled = true;
      try {
        const answer = await json(verifyForm.action, {
          method: "POST", body: new FormData(verifyForm), headers: { Accept: "application/json" },
        });
        if (answer.status === 202 && answer.body) await track(answer.body.task_id);
        else { progress.hidden = false; progress.textContent = "Could not queue the verification (HTTP " + answer.status + ")."; }
      } finally {
        button.disabled = false;
      }
    });
  }
})();
