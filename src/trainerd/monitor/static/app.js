/* trainerd monitor page: polls the JSON API every 2 s and draws it. No framework, no inline HTML:
   every value from the server goes in through textContent, so a file name can never become markup. */
"use strict";

(function () {
  const POLL_MS = 2000;
  const MAX_POINTS = 50000;
  const TOKEN_KEY = "trainerd-token";
  const CONFIRM_MS = 4000;

  const $ = (id) => document.getElementById(id);
  const metrics = { since: 0, xs: [], loss: [], lr: [], tps: [], jobs: [], boundaries: [] };
  let lossPlot = null;
  let tpsPlot = null;
  let lastStatus = null;
  let maxUpload = 256 * 1024 * 1024;
  let polling = false;

  // ---- token ---------------------------------------------------------------------------------
  function takeTokenFromHash() {
    const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    if (match) {
      localStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
  }
  const token = () => localStorage.getItem(TOKEN_KEY) || "";

  function askToken(reason) {
    $("token-box").hidden = false;
    $("token-input").value = "";
    $("token-input").focus();
    if (reason) say(reason, true);
  }

  // ---- API -----------------------------------------------------------------------------------
  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    if (token()) opts.headers["Authorization"] = "Bearer " + token();
    const response = await fetch(path, opts);
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = { error: "the monitor sent no JSON (" + response.status + ")" };
    }
    if (response.status === 401 || response.status === 403) {
      askToken(response.status === 401 ? "this needs the monitor token" : "the monitor token was refused");
    }
    if (!response.ok) {
      const error = new Error(body && body.error ? body.error : "HTTP " + response.status);
      error.hint = body && body.hint;
      error.status = response.status;
      throw error;
    }
    return body;
  }

  async function act(path, body, label) {
    if (!token()) {
      askToken("enter the monitor token to " + label);
      return;
    }
    try {
      const opts = { method: "POST" };
      if (body !== undefined) {
        opts.headers = { "Content-Type": "application/json" };
        opts.body = JSON.stringify(body);
      }
      await api(path, opts);
      say(label + ": sent to the daemon");
      poll();
    } catch (err) {
      say(label + " failed: " + err.message + (err.hint ? " — " + err.hint : ""), true);
    }
  }

  // ---- small helpers -------------------------------------------------------------------------
  let messageTimer = null;
  function say(text, isError) {
    const box = $("message");
    box.textContent = text;
    box.classList.toggle("error", !!isError);
    box.hidden = false;
    clearTimeout(messageTimer);
    messageTimer = setTimeout(() => { box.hidden = true; }, isError ? 12000 : 5000);
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      if (cell instanceof Node) td.appendChild(cell);
      else td.textContent = cell === undefined || cell === null || cell === "" ? "—" : String(cell);
      tr.appendChild(td);
    }
    return tr;
  }

  function fillTable(id, rows, emptyText, columns) {
    const body = $(id).tBodies[0];
    body.replaceChildren();
    if (!rows.length) {
      const td = el("td", emptyText, "muted");
      td.colSpan = columns;
      const tr = document.createElement("tr");
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    for (const r of rows) body.appendChild(r);
  }

  function ago(seconds) {
    if (seconds === null || seconds === undefined) return "never";
    if (seconds < 120) return Math.max(0, Math.round(seconds)) + " s ago";
    if (seconds < 7200) return Math.round(seconds / 60) + " min ago";
    if (seconds < 172800) return (seconds / 3600).toFixed(1) + " h ago";
    return Math.round(seconds / 86400) + " days ago";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "?";
    seconds = Math.round(seconds);
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return h ? h + "h" + String(m).padStart(2, "0") + "m" : m + "m" + String(s).padStart(2, "0") + "s";
  }

  function when(value) {
    if (value === null || value === undefined || value === "") return "—";
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    if (isNaN(date.getTime())) return String(value);
    return date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  const num = (v, digits) => (typeof v === "number" && isFinite(v) ? v.toFixed(digits) : "—");
  const sci = (v) => (typeof v === "number" && isFinite(v) ? v.toExponential(2) : "—");

  /* Buttons that change a lot ask for a second click instead of a dialog (dialogs block a headless browser). */
  function confirmed(button) {
    if (!button.dataset.confirm) return true;
    if (button.dataset.armed === "1") {
      button.dataset.armed = "";
      button.textContent = button.dataset.label;
      return true;
    }
    button.dataset.label = button.textContent;
    button.dataset.armed = "1";
    button.textContent = "Click again: " + button.dataset.confirm;
    setTimeout(() => {
      if (button.dataset.armed === "1") {
        button.dataset.armed = "";
        button.textContent = button.dataset.label;
      }
    }, CONFIRM_MS);
    return false;
  }

  // ---- status --------------------------------------------------------------------------------
  function renderStatus(data) {
    lastStatus = data;
    maxUpload = data.max_upload_bytes || maxUpload;
    const status = data.status || {};
    const state = $("state");
    state.textContent = data.state + (data.stale ? " (stale)" : "");
    state.dataset.state = data.state;
    state.className = "state state-" + data.state.replace(/[^a-z]/g, "") + (data.stale ? " stale" : "");
    $("heartbeat").textContent = data.status
      ? "heartbeat " + ago(data.heartbeat_age) + (data.daemon_pid ? " · PID " + data.daemon_pid : "")
      : "";
    $("model-info").textContent = data.status
      ? "model " + (status.current_model || "—") + " · global step " + (status.global_step || 0)
      : "";
    const warning = $("warning");
    warning.hidden = !data.warning;
    warning.textContent = data.warning ? "⚠ " + data.warning + (status.message ? " — " + status.message : "") : "";

    const running = data.daemon_running;
    const paused = data.state === "paused";
    $("btn-pause").disabled = !running || paused || data.state === "stopping";
    $("btn-resume").disabled = !running || !paused;
    $("btn-skip").disabled = !running || !status.current_job;
    $("btn-stop").disabled = !running || data.state === "stopping";
    $("btn-snapshot").disabled = !running;

    $("job-card").classList.toggle("paused", paused);
    const job = status.current_job;
    const bar = $("job-progress-bar");
    if (!job) {
      $("job-title").textContent = status.message ? status.message : "no job running";
      $("job-detail").textContent = "";
      bar.style.width = "0%";
      $("job-progress").setAttribute("aria-valuenow", "0");
      return;
    }
    const step = job.step || 0, total = job.total_steps || 0;
    const pct = total ? Math.min(100, (100 * step) / total) : 0;
    bar.style.width = pct.toFixed(1) + "%";
    $("job-progress").setAttribute("aria-valuenow", pct.toFixed(0));
    $("job-title").textContent = (job.file || job.job_id) + " · " + (job.priority || "normal") + " priority"
      + (job.attempt > 1 ? " · attempt " + job.attempt : "");
    $("job-detail").textContent = "step " + step + " / " + (total || "?") + " (" + pct.toFixed(0) + "%)"
      + " · loss " + num(job.loss, 4) + " · lr " + sci(job.lr)
      + " · " + num(job.tokens_per_second, 0) + " tok/s"
      + " · ETA " + (data.state === "paused" ? "paused" : duration(job.eta_seconds));
  }

  // ---- charts --------------------------------------------------------------------------------
  function drawBoundaries(u) {
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const ratio = (window.uPlot && uPlot.pxRatio) || 1;
    ctx.save();
    ctx.strokeStyle = "#9ca3af";
    ctx.fillStyle = "#6b7280";
    ctx.lineWidth = ratio;
    ctx.setLineDash([4 * ratio, 4 * ratio]);
    ctx.font = Math.round(10 * ratio) + "px system-ui, sans-serif";
    for (const b of metrics.boundaries) {
      const x = Math.round(u.valToPos(b.x, "x", true));
      if (x < left || x > left + width) continue;
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      ctx.fillText(b.label, x + 3 * ratio, top + 11 * ratio);
    }
    ctx.restore();
  }

  function makeCharts() {
    if (!window.uPlot) {
      $("loss-chart").textContent = "chart library failed to load";
      return;
    }
    const width = (id) => Math.max(280, $(id).clientWidth - 4);
    lossPlot = new uPlot({
      width: width("loss-chart"),
      height: 260,
      scales: { x: { time: false } },
      series: [
        { label: "global step" },
        { label: "loss", stroke: "#2563eb", width: 1.5, spanGaps: true, value: (u, v) => num(v, 4) },
        { label: "lr", stroke: "#d97706", width: 1, scale: "lr", spanGaps: true, value: (u, v) => sci(v) },
      ],
      axes: [
        {},
        { label: "loss", size: 55 },
        { scale: "lr", side: 1, size: 70, grid: { show: false }, values: (u, vals) => vals.map((v) => v.toExponential(1)) },
      ],
      hooks: { draw: [drawBoundaries] },
    }, [[], [], []], $("loss-chart"));
    tpsPlot = new uPlot({
      width: width("tps-chart"),
      height: 180,
      scales: { x: { time: false } },
      series: [
        { label: "global step" },
        { label: "tokens/s", stroke: "#059669", width: 1.5, spanGaps: true, value: (u, v) => num(v, 0) },
      ],
      axes: [{}, { size: 55 }],
    }, [[], []], $("tps-chart"));
    window.addEventListener("resize", () => {
      lossPlot.setSize({ width: width("loss-chart"), height: 260 });
      tpsPlot.setSize({ width: width("tps-chart"), height: 180 });
    });
  }

  function addMetrics(data) {
    for (const r of data.rows) {
      if (typeof r.global_step !== "number") continue;
      const lastJob = metrics.jobs[metrics.jobs.length - 1];
      if (metrics.jobs.length && r.job_id !== lastJob) {
        metrics.boundaries.push({ x: r.global_step - 0.5, label: String(r.job_id || "").slice(0, 32) });
      }
      metrics.xs.push(r.global_step);
      metrics.loss.push(typeof r.loss === "number" ? r.loss : null);
      metrics.lr.push(typeof r.lr === "number" ? r.lr : null);
      metrics.tps.push(typeof r.tokens_per_second === "number" ? r.tokens_per_second : null);
      metrics.jobs.push(r.job_id);
    }
    const extra = metrics.xs.length - MAX_POINTS;
    if (extra > 0) {
      for (const key of ["xs", "loss", "lr", "tps", "jobs"]) metrics[key].splice(0, extra);
      metrics.boundaries = metrics.boundaries.filter((b) => b.x >= metrics.xs[0]);
    }
    metrics.since = Math.max(metrics.since, data.last_global_step || 0);
    const lossEl = $("loss-chart");
    lossEl.dataset.points = String(metrics.loss.filter((v) => v !== null).length);
    lossEl.dataset.jobs = String(metrics.boundaries.length + (metrics.xs.length ? 1 : 0));
    $("tps-chart").dataset.points = String(metrics.tps.filter((v) => v !== null).length);
    if (data.rows.length) {
      if (lossPlot) lossPlot.setData([metrics.xs, metrics.loss, metrics.lr]);
      if (tpsPlot) tpsPlot.setData([metrics.xs, metrics.tps]);
    }
  }

  // ---- queue, versions, snapshots, history, failed -------------------------------------------
  function renderQueue(data) {
    const c = data.counts || {};
    $("queue-counts").replaceChildren(
      ...["high", "normal", "low", "processing", "failed", "done"].map((key) => {
        const span = el("span", null, "count count-" + key);
        span.appendChild(el("b", c[key] || 0));
        span.appendChild(document.createTextNode(" " + key));
        return span;
      })
    );
    $("queue-processing").textContent = data.processing
      ? "training: " + data.processing.original_name + " (" + data.processing.priority + ")"
      : "";
    const list = $("queue-list");
    list.replaceChildren();
    for (const priority of ["high", "normal", "low"]) {
      for (const job of (data.queued || {})[priority] || []) {
        const li = el("li");
        li.appendChild(el("span", priority, "tag tag-" + priority));
        li.appendChild(document.createTextNode(" " + job.original_name + " "));
        li.appendChild(el("span", "queued " + when(job.submitted_at) + (job.attempts ? " · " + job.attempts + " failed attempts" : ""), "muted"));
        list.appendChild(li);
      }
    }
    if (!list.children.length) list.appendChild(el("li", "queue is empty", "muted"));
  }

  function renderVersions(data) {
    const rows = (data.versions || []).slice().reverse().map((v) => {
      const name = el("span", v.name + (v.current ? " ★ current" : ""), v.current ? "current" : "");
      let action = el("span", "");
      if (!v.current) {
        action = el("button", "Roll back", "small danger");
        action.type = "button";
        action.dataset.confirm = "roll back to " + v.name + "?";
        action.dataset.version = v.name;
        action.addEventListener("click", () => {
          if (confirmed(action)) act("/api/rollback", { to: v.name }, "rollback to " + v.name);
        });
      }
      const meta = v.meta || {};
      return row([name, when(v.created_at), v.kind, meta.job_id || meta.reason || meta.source || "", action]);
    });
    fillTable("versions", rows, data.error || "no versions yet", 5);
  }

  function renderSnapshots(data) {
    const rows = (data.snapshots || []).slice().reverse().map((s) => {
      const v = s.verify;
      const state = v
        ? el("span", (v.ok ? "✓ ok " : "✗ " + v.problems.slice(0, 3).join("; ") + " ") + when(v.verified_at), v.ok ? "ok" : "bad")
        : el("span", "not verified yet", "muted");
      const button = el("button", "Verify", "small");
      button.type = "button";
      button.addEventListener("click", async () => {
        if (!token()) return askToken("enter the monitor token to verify a snapshot");
        button.disabled = true;
        button.textContent = "verifying…";
        try {
          const result = await api("/api/snapshots/" + encodeURIComponent(s.name) + "/verify", { method: "POST" });
          say("snapshot " + s.name + (result.verify.ok ? " verified: ok" : " FAILED verification"), !result.verify.ok);
          poll();
        } catch (err) {
          say("verify failed: " + err.message, true);
          button.disabled = false;
          button.textContent = "Verify";
        }
      });
      return row([s.name, s.version, s.reason, state, button]);
    });
    fillTable("snapshots", rows, "no snapshots yet", 5);
  }

  function renderHistory(data) {
    const rows = (data.history || []).slice().reverse().map((h) => {
      const outcome = el("span", h.outcome || h.state || "", "outcome outcome-" + String(h.outcome || "").replace(/[^a-z]/g, ""));
      const loss = h.final_loss !== undefined ? h.final_loss : h.loss;
      const details = h.error || h.reason || (h.seconds ? "took " + duration(h.seconds) : "");
      return row([when(h.finished_at), h.original_name || h.file || h.job_id, outcome, h.version,
        h.steps !== undefined ? h.steps : h.global_step, num(loss, 4), details]);
    });
    fillTable("history", rows, "no finished jobs yet", 7);
  }

  function renderFailed(data) {
    const rows = (data.failed || []).slice().reverse().map((f) => {
      let reason = f.reason || "";
      if (f.problem_count) reason += " (" + f.problem_count + " problem lines)";
      return row([when(f.time_epoch || f.time), f.original_name || f.job_id, f.stage, reason, f.hint]);
    });
    fillTable("failed", rows, "no failed files", 5);
  }

  // ---- polling -------------------------------------------------------------------------------
  const views = [
    ["/api/queue", renderQueue],
    ["/api/versions", renderVersions],
    ["/api/snapshots", renderSnapshots],
    ["/api/history?limit=200", renderHistory],
    ["/api/failed", renderFailed],
  ];

  async function poll() {
    if (polling) return;
    polling = true;
    try {
      const status = api("/api/status").then(renderStatus);
      const points = api("/api/metrics?since=" + metrics.since).then(addMetrics);
      const rest = views.map(([path, render]) => api(path).then(render));
      const results = await Promise.allSettled([status, points, ...rest]);
      const failed = results[0];
      if (failed.status === "rejected" && failed.reason.status !== 401 && failed.reason.status !== 403) {
        $("state").textContent = "monitor unreachable";
        $("state").className = "state stale";
        $("state").dataset.state = "unreachable";
      }
    } finally {
      polling = false;
    }
  }

  function loop() {
    poll().finally(() => setTimeout(loop, POLL_MS));
  }

  // ---- wiring --------------------------------------------------------------------------------
  function wire() {
    for (const action of ["pause", "resume", "stop", "skip"]) {
      const button = $("btn-" + action);
      button.addEventListener("click", () => {
        if (confirmed(button)) act("/api/control/" + action, undefined, action);
      });
    }
    $("btn-snapshot").addEventListener("click", () => act("/api/snapshot", undefined, "snapshot"));
    $("btn-token").addEventListener("click", () => askToken());
    $("token-box").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token-input").value.trim();
      if (value) localStorage.setItem(TOKEN_KEY, value);
      $("token-box").hidden = true;
      say("token saved in this browser");
      poll();
    });
    $("token-cancel").addEventListener("click", () => { $("token-box").hidden = true; });
    $("upload-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const file = $("upload-file").files[0];
      if (!file) return say("choose a .jsonl file first", true);
      if (file.size > maxUpload) return say("the file is over the upload limit of " + maxUpload + " bytes", true);
      if (!token()) return askToken("enter the monitor token to upload");
      const priority = $("upload-priority").value;
      const query = "?name=" + encodeURIComponent(file.name) + "&priority=" + encodeURIComponent(priority);
      try {
        const result = await api("/api/upload" + query, { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } });
        say("uploaded as inbox/" + result.name + " (" + result.priority + " priority)");
        $("upload-file").value = "";
        poll();
      } catch (err) {
        say("upload failed: " + err.message + (err.hint ? " — " + err.hint : ""), true);
      }
    });
  }

  takeTokenFromHash();
  wire();
  makeCharts();
  loop();
})();
