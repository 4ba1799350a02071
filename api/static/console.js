// Aegis review console. Every value from the API is put on the page with textContent or as a DOM
// attribute, never parsed as HTML. The API key stays in this tab's sessionStorage.
"use strict";
(function () {
  const KEY = "aegis.apiKey";
  const $ = (id) => document.getElementById(id);
  const state = { cursor: null, selected: null, chart: null };

  function text(tag, value, cls) {
    const el = document.createElement(tag);
    el.textContent = value === null || value === undefined ? "–" : String(value);
    if (cls) el.className = cls;
    return el;
  }

  function problem(body, status) {
    if (body && Array.isArray(body.detail)) {
      return body.detail.map((d) => (d.loc || []).slice(1).join(".") + ": " + d.msg).join("; ");
    }
    return (body && typeof body.detail === "string" ? body.detail : "HTTP " + status);
  }

  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    opts.headers["X-API-Key"] = sessionStorage.getItem(KEY) || "";
    if (opts.body) opts.headers["Content-Type"] = "application/json";
    const response = await fetch(path, opts);
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const error = new Error(problem(body, response.status));
      error.status = response.status;
      throw error;
    }
    return body;
  }

  const fmtTime = (t) => (t ? t.replace("T", " ").replace(/\.\d+Z$/, "") : null);
  const fmtNum = (x, digits) => (typeof x === "number" ? x.toFixed(digits) : null);

  function scoreRow(s, withCustomer) {
    const tr = document.createElement("tr");
    tr.dataset.transactionId = s.transaction_id;
    tr.appendChild(text("td", fmtTime(s.event_time)));
    tr.appendChild(text("td", s.transaction_id));
    if (withCustomer) tr.appendChild(text("td", s.customer_id));
    tr.appendChild(text("td", fmtNum(s.amount, 2)));
    tr.appendChild(text("td", fmtNum(s.score, 3)));
    tr.appendChild(text("td", s.decision, "decision-" + String(s.decision).replace(/[^a-z]/g, "")));
    return tr;
  }

  async function loadQueue(reset) {
    const body = $("queue-table").tBodies[0];
    if (reset) { body.replaceChildren(); state.cursor = null; }
    const params = new URLSearchParams({ limit: "50" });
    const decision = $("queue-decision").value;
    if (decision) params.set("decision", decision);
    if (state.cursor) params.set("cursor", state.cursor);
    $("queue-status").textContent = "loading…";
    try {
      const page = await api("/v1/decisions?" + params.toString());
      for (const s of page.items) body.appendChild(scoreRow(s, true));
      state.cursor = page.next_cursor;
      $("more").hidden = !page.next_cursor;
      $("queue-status").textContent = body.rows.length + " flagged transactions shown";
    } catch (e) {
      $("queue-status").textContent = "Queue unavailable: " + e.message;
    }
  }

  function field(dl, name, value) {
    dl.appendChild(text("dt", name));
    dl.appendChild(text("dd", value));
  }

  function drawChart(explanation) {
    const items = explanation.contributions
      .filter((c) => typeof c.contribution === "number")
      .sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution))
      .slice(0, 15);
    if (state.chart) state.chart.destroy();
    if (typeof Chart === "undefined") return;
    state.chart = new Chart($("shap-chart"), {
      type: "bar",
      data: {
        labels: items.map((c) => c.feature),
        datasets: [{
          label: "contribution",
          data: items.map((c) => c.contribution),
          backgroundColor: items.map((c) => (c.contribution >= 0 ? "#d93025" : "#188038")),
        }],
      },
      options: {
        indexAxis: "y", animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { legend: { display: false },
                   title: { display: true, text: "expected value " + fmtNum(explanation.expected_value, 4) +
                                                 " → score " + fmtNum(explanation.score, 4) } },
      },
    });
  }

  async function select(transactionId) {
    state.selected = transactionId;
    for (const row of $("queue-table").tBodies[0].rows) {
      row.classList.toggle("selected", row.dataset.transactionId === transactionId);
    }
    $("detail").hidden = false;
    $("verdict-status").textContent = "";
    $("d-id").textContent = transactionId;
    $("v-transaction").value = transactionId;
    const dl = $("d-fields");
    dl.replaceChildren();
    try {
      const tx = await api("/v1/transactions/" + encodeURIComponent(transactionId));
      field(dl, "Time (UTC)", fmtTime(tx.event_time));
      field(dl, "Customer", tx.customer_id);
      field(dl, "Terminal", tx.terminal_id);
      field(dl, "Amount", fmtNum(tx.amount, 2));
      field(dl, "Score", fmtNum(tx.score, 4));
      field(dl, "Decision", tx.decision);
      field(dl, "Model", tx.model_name + " v" + tx.model_version);
      field(dl, "Policy / features", tx.policy_version + " / " + tx.feature_version);
      field(dl, "Top reasons", tx.top_reasons.map((r) => r.feature + " " + fmtNum(r.contribution, 3)).join(", "));
      const [explanation, history] = await Promise.all([
        api("/v1/transactions/" + encodeURIComponent(transactionId) + "/explanation"),
        api("/v1/customers/" + encodeURIComponent(tx.customer_id) + "/scores?limit=20"),
      ]);
      drawChart(explanation);
      const body = $("history-table").tBodies[0];
      body.replaceChildren();
      for (const s of history.items) body.appendChild(scoreRow(s, false));
    } catch (e) {
      field(dl, "Error", e.message);
    }
  }

  async function submitVerdict(event) {
    event.preventDefault();
    const isFraud = event.submitter ? event.submitter.value : "";
    const note = $("v-note").value;
    const payload = { transaction_id: $("v-transaction").value, is_fraud: isFraud === "true" ? true
                      : isFraud === "false" ? false : isFraud, note: note === "" ? null : note };
    $("verdict-status").textContent = "recording…";
    try {
      const v = await api("/v1/verdicts", { method: "POST", body: JSON.stringify(payload) });
      $("verdict-status").textContent = "Verdict #" + v.verdict_id + " recorded: " +
        (v.is_fraud ? "fraud" : "not fraud") + " (label published " + fmtTime(v.published_at) + ")";
    } catch (e) {
      $("verdict-status").textContent = "Not recorded: " + e.message;
    }
  }

  async function signIn(key) {
    sessionStorage.setItem(KEY, key);
    try {
      const me = await api("/v1/me");
      $("who").textContent = me.name + " (" + me.role + ")";
      $("login-view").hidden = true;
      $("console-view").hidden = false;
      $("logout").hidden = false;
      await loadQueue(true);
    } catch (e) {
      sessionStorage.removeItem(KEY);
      $("login-error").textContent = e.status === 403 ? "This key's role may not use the console (analyst or admin)."
        : e.status === 401 ? "Unknown API key." : "Sign-in failed: " + e.message;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("api-key").value); });
    $("logout").addEventListener("click", () => { sessionStorage.removeItem(KEY); location.reload(); });
    $("refresh").addEventListener("click", () => loadQueue(true));
    $("queue-decision").addEventListener("change", () => loadQueue(true));
    $("more").addEventListener("click", () => loadQueue(false));
    $("queue-table").tBodies[0].addEventListener("click", (e) => {
      const row = e.target.closest("tr");
      if (row && row.dataset.transactionId) select(row.dataset.transactionId);
    });
    $("verdict-form").addEventListener("submit", submitVerdict);
    if (sessionStorage.getItem(KEY)) signIn(sessionStorage.getItem(KEY));
  });
})();
