// deepfer's page: a photo (dropped or chosen) goes to POST /v1/predict; the faces come back as
// boxes drawn on a canvas and one bar chart of probabilities per face. With "Explain" on,
// POST /v1/explain?mode=overlay gives a transparent heatmap PNG laid over the picture. The webcam's
// frames go to POST /v1/track (one session per start): each face keeps a track id and smoothed
// scores, drawn on the boxes and as a rolling timeline. A dropped video goes to POST /v1/video and
// comes back as its timeline picture and one summary per tracked face.
// Plain JavaScript, no libraries, nothing loaded from elsewhere.
"use strict";

(() => {
  const COLORS = {
    angry: "#e53935", disgust: "#8e24aa", fear: "#5e35b1", happy: "#fdd835",
    sad: "#1e88e5", surprise: "#fb8c00", neutral: "#9e9e9e", contempt: "#6d4c41",
  };
  const SPARE = ["#26a69a", "#ec407a", "#8d6e63", "#78909c"];
  const FRAME_INTERVAL_MS = 250; // the webcam sends at most 4 frames a second, one at a time
  const OVERLAY_INTERVAL_MS = 1000; // and asks for a heatmap at most once a second
  const MAX_CANVAS_SIDE = 1280;
  const FRAME_WIDTH = 640;
  const ROLLING_SECONDS = 30; // the webcam's rolling timeline shows this much history
  const VIDEO_SUFFIXES = /\.(mp4|m4v|mov|avi|mkv|webm|mpe?g|wmv|flv|3gp|ts)$/i;

  const $ = (id) => document.getElementById(id);
  const el = {
    file: $("file"), drop: $("drop"), webcam: $("webcam"), explain: $("explain"), method: $("method"),
    status: $("status"), canvas: $("canvas"), cam: $("cam"), video: $("video"), overlay: $("overlay"),
    placeholder: $("placeholder"), faces: $("faces"), count: $("count"), timing: $("timing"), model: $("model"),
    timeline: $("timeline"), rolling: $("rolling"), rollingBox: $("rolling-box"), resultsTitle: $("results-title"),
  };

  // Everything the page knows; the end-to-end test reads it as window.deepfer.
  const state = {
    labels: [], limits: null, model: null,
    file: null, image: null, result: null, overlay: null, photoSeq: 0,
    stream: null, frames: 0, lastOverlayAt: 0, frameOverlay: null,
    session: null, history: [], // webcam: [{t, faces: [{track, label}]}], the last ROLLING_SECONDS
    video: null, // the last video's answer from /v1/video
    colors: COLORS,
  };
  window.deepfer = state;

  function colorOf(label) {
    if (COLORS[label]) return COLORS[label];
    const i = Math.max(0, state.labels.indexOf(label));
    return SPARE[i % SPARE.length];
  }

  function textColorOn(hex) {
    const n = parseInt(hex.slice(1), 16);
    const luma = 0.299 * (n >> 16) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255);
    return luma > 150 ? "#111" : "#fff";
  }

  function setState(s) { document.body.dataset.state = s; }

  function say(message, isError = false) {
    el.status.textContent = message;
    el.status.classList.toggle("error", isError);
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const mib = (n) => `${(n / 1048576).toFixed(n < 1048576 ? 2 : 1)} MiB`;

  // -- the API ------------------------------------------------------------------------------------

  async function post(path, blob, name) {
    const form = new FormData();
    form.append("image", blob, name || "image.jpg");
    const res = await fetch(path, { method: "POST", body: form });
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      try { message = `${res.status}: ${(await res.json()).error}`; } catch (_) { /* not JSON */ }
      throw new Error(message);
    }
    return res;
  }

  async function predict(blob, name) {
    return (await post("/v1/predict", blob, name)).json();
  }

  async function track(blob, name) {
    return (await post(`/v1/track?session=${encodeURIComponent(state.session)}`, blob, name)).json();
  }

  async function analyseVideo(file) {
    const res = await fetch(`/v1/video?name=${encodeURIComponent(file.name)}`, {
      method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" },
    });
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      try { message = `${res.status}: ${(await res.json()).error}`; } catch (_) { /* not JSON */ }
      throw new Error(message);
    }
    return res.json();
  }

  async function heatmap(blob, name) {
    const res = await post(`/v1/explain?mode=overlay&method=${encodeURIComponent(el.method.value)}`, blob, name);
    return createImageBitmap(await res.blob());
  }

  async function init() {
    try {
      const res = await fetch("/v1/models");
      const info = await res.json();
      state.labels = info.model.labels;
      state.limits = info.limits;
      state.model = info.model;
      el.model.textContent = `model ${info.model.name} (${info.model.backend}, ${info.model.detector} detector)`;
      if (!info.model.explain) {
        el.explain.disabled = true;
        el.method.disabled = true;
      }
      // A model with branches (prior-attention) also draws each block's Grad-CAM (gradcam:<branch>).
      for (const m of info.model.explain_methods || []) {
        if (m.startsWith("gradcam:") && ![...el.method.options].some((o) => o.value === m)) {
          el.method.add(new Option(`Grad-CAM, ${m.slice(8)} block`, m));
        }
      }
      setState("ready");
    } catch (err) {
      el.model.textContent = "";
      say(`The server did not answer: ${err.message}`, true);
      setState("error");
    }
  }

  // -- drawing ------------------------------------------------------------------------------------

  function drawBoxes(ctx, faces, sx, sy) {
    const side = Math.min(ctx.canvas.width, ctx.canvas.height);
    const line = Math.max(2, Math.round(side / 200));
    const fontSize = Math.max(12, Math.round(side / 32));
    ctx.font = `600 ${fontSize}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    faces.forEach((face, i) => {
      const [x, y, w, h] = face.box;
      const label = shownLabel(face);
      const color = colorOf(label);
      ctx.lineWidth = line;
      ctx.strokeStyle = color;
      ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
      const scores = face.smoothed || face.scores;
      const text = `${face.track != null ? `#${face.track}` : i + 1} ${label} ${Math.round(scores[label] * 100)}%`;
      const tw = ctx.measureText(text).width + 8;
      const th = fontSize + 6;
      const ty = y * sy - th >= 0 ? y * sy - th : y * sy + h * sy;
      ctx.fillStyle = color;
      ctx.fillRect(x * sx - line / 2, ty, tw, th);
      ctx.fillStyle = textColorOn(color);
      ctx.fillText(text, x * sx + 4 - line / 2, ty + 3);
    });
  }

  // A tracked face shows its smoothed label (steadier than the frame's own), others their label.
  function shownLabel(face) {
    if (!face.smoothed) return face.label;
    return Object.keys(face.smoothed).reduce((a, b) => (face.smoothed[b] > face.smoothed[a] ? b : a));
  }

  function drawPhoto() {
    const { image, result, overlay } = state;
    const ctx = el.canvas.getContext("2d");
    if (!image) return;
    const scale = Math.min(1, MAX_CANVAS_SIDE / Math.max(image.width, image.height));
    el.canvas.width = Math.round(image.width * scale);
    el.canvas.height = Math.round(image.height * scale);
    ctx.drawImage(image, 0, 0, el.canvas.width, el.canvas.height);
    if (overlay && el.explain.checked) ctx.drawImage(overlay, 0, 0, el.canvas.width, el.canvas.height);
    if (result) drawBoxes(ctx, result.faces, scale, scale);
  }

  function drawBars(canvas, scores, top) {
    const labels = state.labels.length ? state.labels : Object.keys(scores);
    const ratio = window.devicePixelRatio || 1;
    const width = 300, row = 20, nameWidth = 70, valueWidth = 48;
    canvas.width = width * ratio;
    canvas.height = (labels.length * row + 4) * ratio;
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    labels.forEach((label, i) => {
      const p = scores[label] || 0;
      const y = 2 + i * row;
      const barMax = width - nameWidth - valueWidth;
      ctx.fillStyle = "#eceff4";
      ctx.fillRect(nameWidth, y + 3, barMax, row - 6);
      ctx.fillStyle = colorOf(label);
      ctx.fillRect(nameWidth, y + 3, Math.max(1, barMax * p), row - 6);
      ctx.fillStyle = "#1d2330";
      ctx.font = `${label === top ? "700 " : ""}12px system-ui, sans-serif`;
      ctx.fillText(label, 0, y + row / 2);
      ctx.textAlign = "right";
      ctx.fillText(`${(p * 100).toFixed(1)}%`, width, y + row / 2);
      ctx.textAlign = "left";
    });
    canvas.setAttribute("aria-label", labels.map((l) => `${l} ${(100 * (scores[l] || 0)).toFixed(1)}%`).join(", "));
  }

  function renderFaces(faces) {
    el.faces.replaceChildren();
    el.resultsTitle.textContent = "Faces";
    el.count.textContent = `(${faces.length})`;
    if (!faces.length) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = "No face found.";
      el.faces.append(li);
      return;
    }
    faces.forEach((face, i) => {
      const li = document.createElement("li");
      li.className = "face";
      li.dataset.label = face.label;
      li.dataset.score = face.scores[face.label].toFixed(4);
      li.dataset.box = face.box.join(",");
      const label = shownLabel(face);
      const scores = face.smoothed || face.scores;
      if (face.track != null) li.dataset.track = String(face.track);
      const title = document.createElement("div");
      title.className = "title";
      const name = document.createElement("span");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colorOf(label);
      name.append(swatch, face.track != null ? `#${face.track} ${label}` : `${i + 1}. ${label}`);
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = `${Math.round(scores[label] * 100)}%`;
      title.append(name, score);
      const bars = document.createElement("canvas");
      bars.className = "bars";
      drawBars(bars, scores, label);
      li.append(title, bars);
      el.faces.append(li);
    });
  }

  // -- videos -------------------------------------------------------------------------------------

  const clock = (s) => `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;

  function isVideo(file) {
    return (file.type || "").startsWith("video/") || VIDEO_SUFFIXES.test(file.name || "");
  }

  function renderTracks(answer) {
    el.faces.replaceChildren();
    el.resultsTitle.textContent = "Tracked faces";
    const tracks = answer.tracks;
    el.count.textContent = `(${tracks.length})`;
    if (!tracks.length) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = "No face was found in the video.";
      el.faces.append(li);
    }
    tracks.forEach((t) => {
      const li = document.createElement("li");
      li.className = "face track";
      li.dataset.track = String(t.track);
      li.dataset.dominant = t.dominant;
      const title = document.createElement("div");
      title.className = "title";
      const name = document.createElement("span");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colorOf(t.dominant);
      name.append(swatch, `#${t.track} mostly ${t.dominant}`);
      const share = document.createElement("span");
      share.className = "score";
      share.textContent = `${Math.round(t.shares[t.dominant] * 100)}%`;
      title.append(name, share);
      const meta = document.createElement("div");
      meta.className = "meta";
      meta.textContent = `seen ${clock(t.first)}–${clock(t.last)} (${t.duration.toFixed(1)} s, ${t.frames} frames)`;
      const bars = document.createElement("canvas");
      bars.className = "bars";
      drawBars(bars, t.shares, t.dominant);
      li.append(title, meta, bars);
      el.faces.append(li);
    });
  }

  // An error replaces what the page showed: no earlier video's tracks or timeline under it.
  function clearResults() {
    Object.assign(state, { video: null, result: null, image: null, overlay: null });
    el.faces.replaceChildren();
    el.count.textContent = "";
    el.timing.textContent = "";
    el.timeline.classList.add("hidden");
    el.timeline.removeAttribute("src");
    el.canvas.classList.add("hidden");
    el.placeholder.classList.remove("hidden");
  }

  async function showVideo(file) {
    stopWebcam();
    const seq = ++state.photoSeq;
    state.file = null;
    setState("busy");
    say(`Analysing ${file.name}: every face is tracked; this takes a while for long videos…`);
    const t0 = performance.now();
    try {
      const answer = await analyseVideo(file);
      if (seq !== state.photoSeq) return;
      state.video = answer;
      state.image = null;
      state.result = null;
      el.placeholder.classList.add("hidden");
      el.canvas.classList.add("hidden");
      if (answer.timeline_png) {
        el.timeline.src = answer.timeline_png;
        el.timeline.classList.remove("hidden");
      }
      renderTracks(answer);
      el.timing.textContent = `${answer.frames} frames (${answer.duration.toFixed(1)} s of video) in ` +
        `${((performance.now() - t0) / 1000).toFixed(1)} s`;
      const n = answer.tracks.length;
      const cut = answer.truncated ? " (only its beginning was analysed)" : "";
      const broke = answer.errors.length ? ` Stopped early: ${answer.errors[0]}` : "";
      say(`${file.name}: ${n ? `${n} tracked face${n > 1 ? "s" : ""}` : "no face found"}${cut}.${broke}`);
      setState("done");
    } catch (err) {
      if (seq !== state.photoSeq) return;
      clearResults();
      say(`${file.name}: ${err.message}`, true);
      setState("error");
    }
  }

  // -- photos -------------------------------------------------------------------------------------

  async function showPhoto(file) {
    if (!file) return;
    if (isVideo(file)) { showVideo(file); return; }
    if (state.limits && file.size > state.limits.max_upload_bytes) {
      say(`${file.name} is ${mib(file.size)}: larger than the server's ${mib(state.limits.max_upload_bytes)} limit.`, true);
      return;
    }
    stopWebcam();
    const seq = ++state.photoSeq;
    state.file = file;
    setState("busy");
    say(`Recognizing ${file.name}…`);
    const t0 = performance.now();
    try {
      const [result, image] = await Promise.all([
        predict(file, file.name),
        createImageBitmap(file, { imageOrientation: "from-image" }).catch(() => null),
      ]);
      const ms = Math.round(performance.now() - t0);
      const overlay = el.explain.checked && result.faces.length ? await heatmap(file, file.name) : null;
      if (seq !== state.photoSeq) return; // a newer photo came meanwhile
      Object.assign(state, { result, image, overlay, video: null });
      el.placeholder.classList.add("hidden");
      el.timeline.classList.add("hidden");
      el.canvas.classList.remove("hidden");
      drawPhoto();
      renderFaces(result.faces);
      el.timing.textContent = `${ms} ms for the answer`;
      const found = result.faces.length;
      say(image ? `${file.name}: ${found ? `${found} face${found > 1 ? "s" : ""}` : "no face found"}.`
        : `${file.name}: this browser cannot show the image; the results are on the right.`);
      setState("done");
    } catch (err) {
      if (seq !== state.photoSeq) return;
      say(`${file.name}: ${err.message}`, true);
      setState("error");
    }
  }

  async function refreshOverlay() {
    if (state.stream) { state.frameOverlay = null; state.lastOverlayAt = 0; return; }
    if (!state.file || !state.result) return;
    if (el.explain.checked && !state.result.faces.length) { say("No face to explain."); return; }
    try {
      state.overlay = el.explain.checked ? await heatmap(state.file, state.file.name) : null;
      drawPhoto();
      if (el.explain.checked) say(`Heatmap: ${el.method.options[el.method.selectedIndex].text}.`);
    } catch (err) {
      say(`Explain: ${err.message}`, true);
    }
  }

  // -- the webcam ---------------------------------------------------------------------------------

  async function startWebcam() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      say("This browser offers no webcam here (it needs https or localhost).", true);
      return;
    }
    try {
      state.stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
      });
    } catch (err) {
      say(`No webcam: ${err.message || err.name}`, true);
      return;
    }
    state.photoSeq++; // a photo still on its way must not draw over the video
    state.session = `cam-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e9).toString(36)}`;
    state.history = [];
    el.video.srcObject = state.stream;
    await el.video.play();
    el.placeholder.classList.add("hidden");
    el.canvas.classList.add("hidden");
    el.timeline.classList.add("hidden");
    el.cam.classList.remove("hidden");
    el.rollingBox.classList.remove("hidden");
    el.webcam.textContent = "Stop webcam";
    el.webcam.setAttribute("aria-pressed", "true");
    state.frames = 0;
    state.frameOverlay = null;
    say("Webcam on: faces are recognised a few times a second.");
    setState("webcam");
    webcamLoop();
  }

  function stopWebcam() {
    if (!state.stream) return;
    state.stream.getTracks().forEach((t) => t.stop());
    state.stream = null;
    el.video.srcObject = null;
    el.cam.classList.add("hidden");
    el.rollingBox.classList.add("hidden");
    el.canvas.classList.remove("hidden");
    if (!state.image) el.placeholder.classList.remove("hidden");
    el.webcam.textContent = "Start webcam";
    el.webcam.setAttribute("aria-pressed", "false");
    say("Webcam off.");
    setState("ready");
  }

  async function webcamLoop() {
    const grab = document.createElement("canvas");
    while (state.stream) {
      const t0 = performance.now();
      try {
        await sendFrame(grab);
      } catch (err) {
        say(`Webcam: ${err.message}`, true);
        await sleep(1000);
      }
      await sleep(Math.max(0, FRAME_INTERVAL_MS - (performance.now() - t0)));
    }
  }

  async function sendFrame(grab) {
    const v = el.video;
    if (!v.videoWidth) return;
    const scale = Math.min(1, FRAME_WIDTH / v.videoWidth);
    grab.width = Math.round(v.videoWidth * scale);
    grab.height = Math.round(v.videoHeight * scale);
    grab.getContext("2d").drawImage(v, 0, 0, grab.width, grab.height);
    const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.8));
    if (!blob || !state.stream) return;
    const t0 = performance.now();
    const result = await track(blob, `frame${state.frames}.jpg`);
    const ms = Math.round(performance.now() - t0);
    if (el.explain.checked && result.faces.length && performance.now() - state.lastOverlayAt > OVERLAY_INTERVAL_MS) {
      state.lastOverlayAt = performance.now();
      state.frameOverlay = await heatmap(blob, "frame.jpg");
    } else if (!el.explain.checked) {
      state.frameOverlay = null;
    }
    if (!state.stream) return;
    state.frames += 1;
    state.result = result;
    el.overlay.width = grab.width;
    el.overlay.height = grab.height;
    const ctx = el.overlay.getContext("2d");
    ctx.clearRect(0, 0, grab.width, grab.height);
    if (state.frameOverlay) ctx.drawImage(state.frameOverlay, 0, 0, grab.width, grab.height);
    drawBoxes(ctx, result.faces, 1, 1);
    renderFaces(result.faces);
    remember(result);
    drawRolling();
    el.timing.textContent = `frame ${state.frames}: ${ms} ms for the answer`;
    if (el.status.classList.contains("error")) say("Webcam on.");
  }

  // The webcam's rolling timeline: one row per face tracked in the last ROLLING_SECONDS, each
  // frame's smoothed label as a coloured stretch until the next frame.
  function remember(result) {
    const t = typeof result.time === "number" ? result.time : performance.now() / 1000;
    state.history.push({ t, faces: result.faces.map((f) => ({ track: f.track, label: shownLabel(f) })) });
    while (state.history.length && state.history[0].t < t - ROLLING_SECONDS) state.history.shift();
  }

  function drawRolling() {
    const canvas = el.rolling;
    const hist = state.history;
    const tracks = [...new Set(hist.flatMap((h) => h.faces.map((f) => f.track)))].sort((a, b) => a - b);
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(300, canvas.clientWidth || 800);
    const row = 18, gap = 4, left = 44;
    const height = Math.max(1, tracks.length) * (row + gap) + 14;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    const now = hist.length ? hist[hist.length - 1].t : 0;
    const x = (t) => left + (width - left) * (1 - (now - t) / ROLLING_SECONDS);
    if (!tracks.length) {
      ctx.fillStyle = "#5b6475";
      ctx.fillText("no face yet", left, row / 2);
    }
    tracks.forEach((track, r) => {
      const y = r * (row + gap);
      ctx.fillStyle = "#1d2330";
      ctx.fillText(`#${track}`, 0, y + row / 2);
      for (let i = 0; i < hist.length; i++) {
        const face = hist[i].faces.find((f) => f.track === track);
        if (!face) continue;
        const end = i + 1 < hist.length ? hist[i + 1].t : hist[i].t + 0.25;
        ctx.fillStyle = colorOf(face.label);
        ctx.fillRect(x(hist[i].t), y, Math.max(1, x(end) - x(hist[i].t)), row);
      }
    });
    ctx.fillStyle = "#5b6475";
    ctx.textAlign = "right";
    ctx.fillText("now", width, height - 6);
    ctx.textAlign = "left";
    ctx.fillText(`-${ROLLING_SECONDS} s`, left, height - 6);
    canvas.setAttribute("aria-label", tracks.map((t) => {
      const last = [...hist].reverse().find((h) => h.faces.some((f) => f.track === t));
      return `track ${t}: ${last ? last.faces.find((f) => f.track === t).label : ""}`;
    }).join(", ") || "no face yet");
  }

  // -- wiring -------------------------------------------------------------------------------------

  el.file.addEventListener("change", () => showPhoto(el.file.files[0]));
  ["dragenter", "dragover"].forEach((type) => el.drop.addEventListener(type, (e) => {
    e.preventDefault();
    el.drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => el.drop.addEventListener(type, () => el.drop.classList.remove("over")));
  el.drop.addEventListener("drop", (e) => {
    e.preventDefault();
    showPhoto(e.dataTransfer && e.dataTransfer.files[0]);
  });
  el.webcam.addEventListener("click", () => (state.stream ? stopWebcam() : startWebcam()));
  el.explain.addEventListener("change", refreshOverlay);
  el.method.addEventListener("change", () => { if (el.explain.checked) refreshOverlay(); });

  init();
})();
