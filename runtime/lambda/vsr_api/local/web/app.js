// vsr's page: upload (presigned), submit, follow a job, cancel, download, compare one frame.
// Plain browser JavaScript, no build step and nothing fetched from elsewhere. It speaks only the
// public HTTP API (docs/api.md) plus web/config.json (the choices the server accepts).
"use strict";

(() => {
  const KEY_STORE = "vsr-api-key"; // sessionStorage: the key lives as long as this tab
  const POLL_MS = 1000;
  const LIST_MS = 4000;
  const $ = (id) => document.getElementById(id);

  const state = {
    config: null,
    file: null,
    selected: null, // job id shown in the job panel
    sources: new Map(), // job id -> the File uploaded from this tab (for before/after)
    rates: new Map(), // job id -> {t0, f0}: first frame count seen, for the ETA
    compared: null, // job id whose comparison is loaded
    compare: null, // {before, after, duration}
    pollTimer: null,
  };

  // -- HTTP -------------------------------------------------------------------------------------
  const url = (path) => new URL(path, document.baseURI).href;

  function headers(json) {
    const h = {};
    const key = sessionStorage.getItem(KEY_STORE);
    if (key) h["x-api-key"] = key;
    if (json) h["Content-Type"] = "application/json";
    return h;
  }

  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(`${message} [${code}]`);
      Object.assign(this, { status, code, field });
    }
  }

  async function api(method, path, body) {
    const response = await fetch(url(path), {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const e = (data && data.error) || { code: `http_${response.status}`, message: (data && data.message) || response.statusText };
      if (response.status === 401 || response.status === 403) askForKey(e.message);
      throw new ApiError(response.status, e.code, e.message, e.field);
    }
    return data;
  }

  // PUT with upload progress (fetch has none): resolves with the answer's ETag.
  function put(target, blob, header, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", target);
      for (const [k, v] of Object.entries(header || {})) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded);
      xhr.onload = () =>
        xhr.status < 300 ? resolve(xhr.getResponseHeader("ETag") || "") : reject(new Error(`upload answered ${xhr.status}`));
      xhr.onerror = () => reject(new Error("upload failed: the connection broke"));
      xhr.send(blob);
    });
  }

  // POST /uploads, then one PUT (or the parts of a multipart upload); resolves with the key.
  async function upload(file, onProgress) {
    const target = await api("POST", "uploads", {
      filename: file.name,
      size: file.size,
      content_type: file.type || "application/octet-stream",
    });
    if (!target.parts || target.parts.length === 0) {
      await put(target.url, file, target.headers, (n) => onProgress(n / file.size));
      return target.key;
    }
    const etags = [];
    let sent = 0;
    for (const part of target.parts) {
      const start = (part.part_number - 1) * target.part_size;
      const slice = file.slice(start, start + target.part_size);
      etags.push([part.part_number, await put(part.url, slice, {}, (n) => onProgress((sent + n) / file.size))]);
      sent += slice.size;
    }
    const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
    const xml = etags.map(([n, tag]) => `<Part><PartNumber>${n}</PartNumber><ETag>${esc(tag)}</ETag></Part>`).join("");
    const done = await fetch(target.complete_url, {
      method: "POST",
      headers: { "Content-Type": "application/xml" },
      body: `<CompleteMultipartUpload>${xml}</CompleteMultipartUpload>`,
    });
    if (!done.ok) throw new Error(`completing the upload answered ${done.status}`);
    return target.key;
  }

  // -- API key ----------------------------------------------------------------------------------
  function askForKey(message) {
    $("key-panel").hidden = false;
    $("main").hidden = true;
    const err = $("key-error");
    err.hidden = !message || !sessionStorage.getItem(KEY_STORE);
    err.textContent = message || "";
    $("api-key").focus();
  }

  async function useKey(event) {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORE, $("api-key").value.trim());
    try {
      await api("GET", "jobs?limit=1");
    } catch (e) {
      return; // askForKey has shown why
    }
    $("api-key").value = "";
    $("key-panel").hidden = true;
    $("main").hidden = false;
    refreshJobs();
  }

  // -- the form ---------------------------------------------------------------------------------
  function fillSelect(select, values, chosen, label) {
    select.replaceChildren(
      ...values.map((v) => {
        const o = document.createElement("option");
        o.value = String(v);
        o.textContent = label ? label(v) : String(v);
        o.selected = v === chosen;
        return o;
      }),
    );
  }

  function setFile(file) {
    state.file = file || null;
    $("file-name").textContent = file ? `${file.name} · ${(file.size / 1048576).toFixed(1)} MiB` : "";
    $("upscale").disabled = !file;
  }

  function showError(where, error) {
    const el = $(where);
    el.hidden = !error;
    el.textContent = error ? String(error.message || error) : "";
  }

  async function submit() {
    const file = state.file;
    if (!file) return;
    const button = $("upscale");
    button.disabled = true;
    showError("form-error", null);
    $("upload-progress").hidden = false;
    const setUpload = (f) => {
      $("upload-bar").style.width = `${Math.round(f * 100)}%`;
      $("upload-text").textContent = `uploading ${Math.round(f * 100)}%`;
    };
    setUpload(0);
    try {
      const key = await upload(file, setUpload);
      setUpload(1);
      $("upload-text").textContent = "uploaded; submitting…";
      const body = {
        key,
        scale: Number($("scale").value),
        task: $("task").value,
        env: $("env").value,
        segment_time: Number($("segment-time").value),
      };
      if ($("model").value) body.model = $("model").value;
      const job = await api("POST", "jobs", body);
      state.sources.set(job.job_id, file);
      $("upload-progress").hidden = true;
      select(job.job_id);
      refreshJobs();
    } catch (e) {
      showError("form-error", e);
      $("upload-progress").hidden = true;
    } finally {
      button.disabled = !state.file;
    }
  }

  // -- one job ----------------------------------------------------------------------------------
  function select(jobId) {
    state.selected = jobId;
    if (location.hash !== `#job=${jobId}`) history.replaceState(null, "", `#job=${jobId}`);
    for (const row of $("jobs").children) row.classList.toggle("selected", row.dataset.jobId === jobId);
    clearTimeout(state.pollTimer);
    poll();
  }

  async function poll() {
    const jobId = state.selected;
    if (!jobId) return;
    try {
      const job = await api("GET", `jobs/${encodeURIComponent(jobId)}`);
      if (jobId !== state.selected) return;
      renderJob(job);
      if (!["succeeded", "failed", "cancelled"].includes(job.state)) {
        state.pollTimer = setTimeout(poll, POLL_MS);
      } else {
        refreshJobs();
      }
    } catch (e) {
      showError("job-failure", e);
      state.pollTimer = setTimeout(poll, POLL_MS * 3);
    }
  }

  function eta(job) {
    const up = job.progress.upscale;
    if (!up.frames_total || up.frames_done == null) return null;
    const now = performance.now() / 1000;
    const seen = state.rates.get(job.job_id);
    if (!seen) {
      state.rates.set(job.job_id, { t0: now, f0: up.frames_done });
      return null;
    }
    if (up.frames_done <= seen.f0 || now <= seen.t0) return null;
    return ((up.frames_total - up.frames_done) * (now - seen.t0)) / (up.frames_done - seen.f0);
  }

  function formatSeconds(s) {
    const m = Math.floor(s / 60);
    const r = Math.round(s % 60);
    return m ? `${m} min ${String(r).padStart(2, "0")} s` : `${r} s`;
  }

  function renderStage(name, stage, jobDone) {
    const li = document.querySelector(`.stages li[data-stage="${name}"]`);
    li.className = stage.state;
    li.classList.toggle("indeterminate", !jobDone && stage.state === "running" && !stage.frames_total);
    let fraction = stage.state === "succeeded" ? 1 : 0;
    let text = stage.state;
    if (name === "upscale") {
      const frames = stage.frames_total ? ` · ${stage.frames_done || 0}/${stage.frames_total} frames` : "";
      text = `${stage.state} · ${stage.done}/${stage.total} segments${frames}`;
      if (stage.frames_total) fraction = (stage.frames_done || 0) / stage.frames_total;
      else if (stage.total) fraction = stage.done / stage.total;
    } else if (stage.frames_total && stage.state === "running") {
      fraction = (stage.frames_done || 0) / stage.frames_total;
    }
    li.querySelector(".bar span").style.width = `${Math.round(fraction * 100)}%`;
    li.querySelector(".stage-text").textContent = text;
  }

  function renderJob(job) {
    $("job-empty").hidden = true;
    $("job").hidden = false;
    $("job-id").textContent = job.job_id;
    const badge = $("job-state");
    badge.textContent = job.state; // the API's own word
    badge.className = `state ${job.state}`;
    $("job-meta").textContent =
      `${job.key} · x${job.scale} · ${job.model} · ${job.segments} segment(s) of ${job.segment_time} s · ${job.task} · ${job.env}`;
    const done = ["succeeded", "failed", "cancelled"].includes(job.state);
    for (const name of ["split", "upscale", "merge"]) renderStage(name, job.progress[name], done);
    const seconds = done ? null : eta(job);
    const etaText =
      job.state === "queued" ? "Waiting for a free slot…" : seconds == null ? "ETA: measuring…" : `ETA ${formatSeconds(seconds)}`;
    $("job-eta").hidden = done;
    $("job-eta").textContent = done ? "" : etaText;
    const failure = $("job-failure");
    failure.hidden = !job.failure_reason;
    failure.textContent = job.failure_reason || "";
    $("cancel").hidden = done;
    const link = $("download");
    link.hidden = !(job.state === "succeeded" && job.download_url);
    if (!link.hidden) {
      link.href = job.download_url;
      link.download = job.output_key.split("/").pop();
    }
    if (job.state === "succeeded") showCompare(job);
    else hideCompare();
  }

  async function cancel() {
    if (!state.selected) return;
    try {
      renderJob(await api("DELETE", `jobs/${encodeURIComponent(state.selected)}`));
      refreshJobs();
    } catch (e) {
      showError("job-failure", e);
    }
  }

  // -- before / after ---------------------------------------------------------------------------
  // The source (the File this tab uploaded) and the result (its download URL: the browser reads
  // only what a seek needs, with Range requests) play in hidden <video> elements; both seek to the
  // same time and are drawn at the result's size, so the slider compares one frame.
  function hideCompare() {
    $("compare").hidden = true;
    $("compare-note").hidden = true;
  }

  function loadVideo(src) {
    return new Promise((resolve, reject) => {
      const v = document.createElement("video");
      v.muted = true;
      v.preload = "auto";
      v.playsInline = true;
      v.onloadeddata = () => resolve(v);
      v.onerror = () => reject(new Error("this browser cannot decode the video"));
      v.src = src;
    });
  }

  function seek(video, t) {
    return new Promise((resolve) => {
      video.addEventListener("seeked", () => resolve(), { once: true });
      video.currentTime = t;
    });
  }

  async function drawCompare() {
    const c = state.compare;
    if (!c) return;
    const fraction = Number($("compare-time").value);
    const t = Math.max(0, Math.min(c.duration * fraction, c.duration - 0.04));
    await Promise.all([seek(c.before, t), seek(c.after, t)]);
    const w = c.after.videoWidth;
    const h = c.after.videoHeight;
    for (const [id, video] of [["after", c.after], ["before", c.before]]) {
      const canvas = $(id);
      canvas.width = w;
      canvas.height = h;
      const ctx = canvas.getContext("2d");
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(video, 0, 0, w, h);
    }
    $("compare-time-text").textContent = `${t.toFixed(2)} s`;
    document.body.dataset.compare = "drawn";
  }

  async function showCompare(job) {
    const file = state.sources.get(job.job_id);
    if (!file) {
      $("compare").hidden = true;
      const note = $("compare-note");
      note.hidden = false;
      note.textContent = "The before/after view needs the source video, which this tab has only for jobs it submitted.";
      return;
    }
    if (state.compared === job.job_id) return;
    state.compared = job.job_id;
    try {
      const [before, after] = await Promise.all([loadVideo(URL.createObjectURL(file)), loadVideo(job.download_url)]);
      state.compare = { before, after, duration: Math.min(before.duration, after.duration) };
      // At most 60% of the window's height, whatever the video's shape.
      $("compare").style.maxWidth = `calc(60vh * ${after.videoWidth / after.videoHeight})`;
      $("compare").hidden = false;
      $("compare-note").hidden = true;
      await drawCompare();
    } catch (e) {
      state.compared = null;
      const note = $("compare-note");
      note.hidden = false;
      note.textContent = `Before/after unavailable: ${e.message}`;
    }
  }

  // -- the job list -----------------------------------------------------------------------------
  let listTimer = null;

  async function refreshJobs() {
    clearTimeout(listTimer);
    try {
      const { jobs } = await api("GET", "jobs?limit=20");
      const rows = jobs.map((job) => {
        const tr = document.createElement("tr");
        tr.dataset.jobId = job.job_id;
        tr.classList.toggle("selected", job.job_id === state.selected);
        const cell = (content) => {
          const td = document.createElement("td");
          if (content instanceof Node) td.append(content);
          else td.textContent = content;
          return td;
        };
        const id = document.createElement("code");
        id.textContent = job.job_id;
        const badge = document.createElement("span");
        badge.className = `state ${job.state}`;
        badge.textContent = job.state;
        tr.append(cell(id), cell(job.key), cell(badge), cell(new Date(job.created_at).toLocaleString()));
        tr.addEventListener("click", () => select(job.job_id));
        return tr;
      });
      $("jobs").replaceChildren(...rows);
      $("jobs-empty").hidden = rows.length > 0;
    } catch (e) {
      $("jobs-empty").hidden = false;
      $("jobs-empty").textContent = `Could not list jobs: ${e.message}`;
    }
    listTimer = setTimeout(refreshJobs, LIST_MS);
  }

  // -- start ------------------------------------------------------------------------------------
  async function start() {
    const config = await (await fetch(url("web/config.json"))).json();
    state.config = config;
    fillSelect($("scale"), config.scales, 2, (s) => `×${s}`);
    fillSelect($("model"), ["", ...config.models], "", (m) => (m ? m : `default (${config.default_model})`));
    fillSelect($("task"), config.tasks, "inference");
    fillSelect($("env"), config.envs, "spot");
    $("segment-time").value = config.segment_time;

    const drop = $("drop");
    $("file").addEventListener("change", (e) => setFile(e.target.files[0]));
    drop.addEventListener("dragover", (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      if (e.dataTransfer.files.length) setFile(e.dataTransfer.files[0]);
    });
    $("upscale").addEventListener("click", submit);
    $("cancel").addEventListener("click", cancel);
    $("key-form").addEventListener("submit", useKey);
    $("compare-split").addEventListener("input", (e) => $("compare-view").style.setProperty("--split", `${e.target.value}%`));
    $("compare-time").addEventListener("change", drawCompare);

    if (config.api_key_required && !sessionStorage.getItem(KEY_STORE)) {
      askForKey();
      return;
    }
    refreshJobs();
    const fromHash = /^#job=(.+)$/.exec(location.hash);
    if (fromHash) select(decodeURIComponent(fromHash[1]));
  }

  start().catch((e) => showError("form-error", e));
})();
