// streamuq demo: stream frames over the WebSocket, draw the class mask over each frame
// and a heatmap of the chosen per-pixel uncertainty beside it. Plain JS, no build step.

const $ = (id) => document.getElementById(id);

const MAX_SIDE = 480; // frames are sent at most this wide or high
const JPEG_QUALITY = 0.8;
const MAX_IN_FLIGHT = 2; // frames sent but not answered: 2 hides the round trip, more only queues
const IMAGE_FRAME_MS = 100; // how long a still image of a sequence is shown
const OUTPUTS = ["mask", "entropy", "epistemic", "aleatoric", "confidence"];
// Viridis, sampled at ten stops: perceptually even, readable in grey, kind to colour-blind eyes.
const VIRIDIS = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37],
];
const LUT = buildLut(VIRIDIS);

const state = {
  model: null, // {name, classes, palette}
  ws: null,
  source: null,
  running: false,
  pumping: false,
  inFlight: [], // [{ts, bitmap, sentAt}] in send order
  chain: Promise.resolve(), // results are drawn one after another, in order
  frames: 0,
  dropped: 0,
  resultTimes: [],
  latencies: [],
  last: null, // the newest result and its frame, redrawn when a control changes
  t0: performance.now(),
  lastTs: -1,
};
window.streamuq = state; // for tests and the curious

// ---------------------------------------------------------------- helpers

function buildLut(stops) {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * (stops.length - 1);
    const k = Math.min(Math.floor(x), stops.length - 2);
    const f = x - k;
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = stops[k][c] * (1 - f) + stops[k + 1][c] * f;
  }
  return lut;
}

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function apiKey() {
  return $("api-key").value.trim();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The fixed range an uncertainty is coloured over, so colours mean the same on every frame.
function valueRange(name) {
  const classes = state.model ? state.model.classes.length : 2;
  return name === "confidence" ? [0, 1] : [0, Math.log(classes)];
}

// A base64 PNG of one 8-bit channel → {w, h, data: Uint8Array of the channel}.
async function decodeGray(b64) {
  const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/png" }), {
    colorSpaceConversion: "none",
    premultiplyAlpha: "none",
  });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const data = new Uint8Array(canvas.width * canvas.height);
  for (let i = 0; i < data.length; i++) data[i] = rgba[i * 4];
  return { w: canvas.width, h: canvas.height, data };
}

// ---------------------------------------------------------------- model, legend, colour bar

async function loadModel() {
  const headers = apiKey() ? { Authorization: `Bearer ${apiKey()}` } : {};
  const response = await fetch("/v1/models", { headers });
  if (response.status === 401) {
    setStatus("The server wants an API key: type it into the key field.", true);
    return;
  }
  if (!response.ok) {
    setStatus(`GET /v1/models failed: ${response.status} ${await response.text()}`, true);
    return;
  }
  const body = await response.json();
  const model = body.models[0];
  state.model = model;
  $("model-name").textContent = `model ${model.name} · ${model.classes.length} classes`;
  if (Array.isArray(model.modes)) {
    for (const option of $("mode").options) option.disabled = !model.modes.includes(option.value);
  }
  drawLegend({});
  drawColorbar();
}

function drawLegend(fractions) {
  if (!state.model) return;
  const items = state.model.classes.map((name, i) => {
    const [r, g, b] = state.model.palette[i];
    const frac = fractions[name] === undefined ? "" : `${(100 * fractions[name]).toFixed(1)} %`;
    const li = document.createElement("li");
    li.innerHTML = `<span class="swatch" style="background:rgb(${r},${g},${b})"></span>`;
    li.append(name);
    const span = document.createElement("span");
    span.className = "frac";
    span.textContent = frac;
    li.append(span);
    return li;
  });
  $("legend").replaceChildren(...items);
}

function drawColorbar() {
  const name = $("uncertainty").value;
  const canvas = $("colorbar");
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(canvas.width, canvas.height);
  for (let x = 0; x < canvas.width; x++) {
    const k = Math.round((x / (canvas.width - 1)) * 255) * 3;
    for (let y = 0; y < canvas.height; y++) {
      const o = (y * canvas.width + x) * 4;
      image.data.set([LUT[k], LUT[k + 1], LUT[k + 2], 255], o);
    }
  }
  ctx.putImageData(image, 0, 0);
  const [lo, hi] = valueRange(name);
  $("cbar-min").textContent = lo.toFixed(1);
  $("cbar-max").textContent = name === "confidence" ? "1.0" : `${hi.toFixed(2)} nats`;
  $("heatmap-name").textContent = name;
}

// ---------------------------------------------------------------- frame sources

// A playing <video> (a file or the webcam): each grab is the frame on screen now.
async function videoSource(video, stopTracks = () => {}) {
  video.muted = true;
  video.playsInline = true;
  video.loop = true;
  await video.play();
  let fresh = true;
  if (video.requestVideoFrameCallback) {
    const onFrame = () => {
      fresh = true;
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }
  return {
    async grab() {
      // Wait (briefly) for a new frame so a fast server does not get the same one twice.
      for (let i = 0; i < 10 && !fresh; i++) await sleep(10);
      fresh = !video.requestVideoFrameCallback;
      return video.videoWidth ? video : null;
    },
    stop() {
      video.pause();
      stopTracks();
      if (video.src) URL.revokeObjectURL(video.src);
    },
  };
}

// Decoded stills with durations (a GIF's frames or a few images), shown in a loop at their own pace.
function stillsSource(frames) {
  const total = frames.reduce((sum, f) => sum + f.ms, 0);
  const start = performance.now();
  return {
    async grab() {
      let t = (performance.now() - start) % total;
      for (const frame of frames) {
        if (t < frame.ms) return frame.image;
        t -= frame.ms;
      }
      return frames[frames.length - 1].image;
    },
    stop() {
      for (const frame of frames) frame.image.close();
    },
  };
}

async function decodeGif(file) {
  if (!("ImageDecoder" in window)) return [{ image: await createImageBitmap(file), ms: IMAGE_FRAME_MS }];
  const decoder = new ImageDecoder({ data: file.stream(), type: file.type });
  await decoder.tracks.ready;
  const count = decoder.tracks.selectedTrack.frameCount;
  const frames = [];
  for (let i = 0; i < count; i++) {
    const { image } = await decoder.decode({ frameIndex: i });
    const ms = image.duration ? image.duration / 1000 : IMAGE_FRAME_MS;
    frames.push({ image: await createImageBitmap(image), ms: Math.max(ms, 20) });
    image.close();
  }
  decoder.close();
  return frames;
}

async function fileSource(files) {
  if (files.length === 1 && files[0].type.startsWith("video/")) {
    const video = document.createElement("video");
    video.src = URL.createObjectURL(files[0]);
    return videoSource(video);
  }
  if (files.length === 1 && files[0].type === "image/gif") return stillsSource(await decodeGif(files[0]));
  const sorted = [...files].sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
  const frames = [];
  for (const file of sorted) frames.push({ image: await createImageBitmap(file), ms: IMAGE_FRAME_MS });
  return stillsSource(frames);
}

async function webcamSource() {
  const media = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  const video = document.createElement("video");
  video.srcObject = media;
  return videoSource(video, () => media.getTracks().forEach((track) => track.stop()));
}

// ---------------------------------------------------------------- streaming

function socketUrl(streamId) {
  const params = new URLSearchParams({ mode: $("mode").value, outputs: OUTPUTS.join(",") });
  if (apiKey()) params.set("token", apiKey());
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/v1/streams/${encodeURIComponent(streamId)}/ws?${params}`;
}

async function start(makeSource) {
  stop();
  if (!state.model) await loadModel();
  if (!state.model) return;
  setStatus("Preparing the source…");
  let source;
  try {
    source = await makeSource();
  } catch (err) {
    setStatus(`Cannot read that source: ${err.message}`, true);
    return;
  }
  const streamId = `web-${Math.random().toString(36).slice(2, 10)}`;
  const ws = new WebSocket(socketUrl(streamId));
  Object.assign(state, { ws, source, running: true, inFlight: [], frames: 0, dropped: 0 });
  Object.assign(state, { resultTimes: [], latencies: [], t0: performance.now(), lastTs: -1 });
  $("stop").disabled = false;
  let opened = false;
  ws.onopen = () => {
    opened = true;
    setStatus(`Streaming as ${streamId}.`);
    pump();
  };
  ws.onmessage = (event) => onMessage(ws, event.data);
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    if (!opened) {
      // Browsers hide the handshake's HTTP status: a 401 looks like any failed connection.
      setStatus("The server refused the stream: check the API key, or the server's log.", true);
    } else {
      const why = event.code === 1000 ? "" : ` (code ${event.code}${event.reason ? `: ${event.reason}` : ""})`;
      const hint = event.code === 1008 ? " Check the API key and the stream's settings." : "";
      setStatus(`Connection closed${why}.${hint}`, event.code !== 1000);
    }
    stop(false);
  };
}

function stop(closeSocket = true) {
  state.running = false;
  if (state.source) state.source.stop();
  state.source = null;
  if (state.ws && closeSocket) {
    const ws = state.ws;
    state.ws = null;
    ws.close(1000);
  }
  for (const entry of state.inFlight) entry.bitmap.close();
  state.inFlight = [];
  $("stop").disabled = true;
}

// Keep up to MAX_IN_FLIGHT frames at the server: grab, encode as JPEG, send with its capture time.
async function pump() {
  if (state.pumping) return;
  state.pumping = true;
  try {
    const capture = new OffscreenCanvas(1, 1);
    while (state.running && state.ws?.readyState === WebSocket.OPEN && state.inFlight.length < MAX_IN_FLIGHT) {
      const image = await state.source.grab();
      if (!state.running) break;
      if (!image) {
        setTimeout(pump, 50); // the source has no frame yet (a video still loading)
        break;
      }
      const w = image.videoWidth || image.width;
      const h = image.videoHeight || image.height;
      const scale = Math.min(1, MAX_SIDE / Math.max(w, h));
      capture.width = Math.round(w * scale);
      capture.height = Math.round(h * scale);
      capture.getContext("2d").drawImage(image, 0, 0, capture.width, capture.height);
      const bitmap = await createImageBitmap(capture);
      const blob = await capture.convertToBlob({ type: "image/jpeg", quality: JPEG_QUALITY });
      const now = (performance.now() - state.t0) / 1000;
      const ts = Math.round(Math.max(now, state.lastTs + 0.001) * 1000) / 1000;
      state.lastTs = ts;
      if (!state.running || state.ws?.readyState !== WebSocket.OPEN) {
        bitmap.close();
        break;
      }
      state.ws.send(JSON.stringify({ type: "frame", timestamp: ts }));
      state.ws.send(blob);
      state.inFlight.push({ ts, bitmap, sentAt: performance.now() });
    }
  } finally {
    state.pumping = false;
  }
}

// The in-flight frame a result belongs to (by its echoed timestamp); older ones were dropped.
function takeFrame(timestamp) {
  let k = state.inFlight.findIndex((entry) => Math.abs(entry.ts - timestamp) < 5e-4);
  if (k < 0) k = 0; // a server that does not echo timestamps: results come in order
  const [entry] = state.inFlight.splice(k, 1);
  for (const older of state.inFlight.splice(0, k)) older.bitmap.close();
  return entry;
}

function onMessage(ws, data) {
  if (state.ws !== ws) return;
  const message = JSON.parse(data);
  if (message.type === "error") {
    const { code, message: text } = message.error;
    if (code !== "frame_superseded") setStatus(`Server: ${code}: ${text}`, true);
    const entry = state.inFlight.shift();
    if (entry) entry.bitmap.close();
    pump();
    return;
  }
  if (message.type !== "result") return;
  const entry = takeFrame(message.timestamp);
  pump();
  if (!entry) return;
  state.chain = state.chain.then(() => showResult(message, entry)).catch((err) => setStatus(err.message, true));
}

async function showResult(result, entry) {
  const now = performance.now();
  const latency = now - entry.sentAt;
  const maps = {};
  for (const [name, map] of Object.entries(result.maps)) maps[name] = { ...map, decoded: null };
  maps.mask.decoded = await decodeGray(maps.mask.data);
  if (state.last) state.last.frame.close();
  state.last = { result, frame: entry.bitmap, maps };
  await draw();

  state.frames += 1;
  state.dropped += result.dropped_frames || 0;
  state.resultTimes.push(now);
  while (state.resultTimes.length && state.resultTimes[0] < now - 2000) state.resultTimes.shift();
  state.latencies.push(latency);
  if (state.latencies.length > 60) state.latencies.shift();
  updateStats(result);
}

// ---------------------------------------------------------------- drawing

// Redraw the newest result after a control changed, in turn with the results being drawn.
function redraw() {
  state.chain = state.chain.then(draw).catch((err) => setStatus(err.message, true));
}

async function draw() {
  const last = state.last;
  if (!last || !state.model) return;
  const { frame, maps } = last;
  const mask = maps.mask.decoded;

  const overlay = $("overlay");
  if (overlay.width !== frame.width || overlay.height !== frame.height) {
    overlay.width = frame.width;
    overlay.height = frame.height;
  }
  const ctx = overlay.getContext("2d");
  ctx.globalAlpha = 1;
  ctx.drawImage(frame, 0, 0);
  const coloured = new ImageData(mask.w, mask.h);
  const palette = state.model.palette;
  for (let i = 0; i < mask.data.length; i++) {
    const rgb = palette[mask.data[i]] || [0, 0, 0];
    coloured.data[i * 4] = rgb[0];
    coloured.data[i * 4 + 1] = rgb[1];
    coloured.data[i * 4 + 2] = rgb[2];
    coloured.data[i * 4 + 3] = 255;
  }
  const maskImage = await createImageBitmap(coloured);
  ctx.globalAlpha = Number($("opacity").value);
  ctx.drawImage(maskImage, 0, 0, overlay.width, overlay.height);
  ctx.globalAlpha = 1;
  maskImage.close();

  const name = $("uncertainty").value;
  const map = maps[name];
  if (!map) return;
  if (!map.decoded) map.decoded = await decodeGray(map.data);
  const scale = map.scale || { min: 0, max: 1 };
  const [lo, hi] = valueRange(name);
  const toLut = new Uint16Array(256); // pixel value → LUT offset, through the map's own scale
  for (let p = 0; p < 256; p++) {
    const value = (p / 255) * (scale.max - scale.min) + scale.min;
    const x = Math.min(1, Math.max(0, (value - lo) / (hi - lo || 1)));
    toLut[p] = Math.round(x * 255) * 3;
  }
  const heat = new ImageData(map.decoded.w, map.decoded.h);
  for (let i = 0; i < map.decoded.data.length; i++) {
    const k = toLut[map.decoded.data[i]];
    heat.data[i * 4] = LUT[k];
    heat.data[i * 4 + 1] = LUT[k + 1];
    heat.data[i * 4 + 2] = LUT[k + 2];
    heat.data[i * 4 + 3] = 255;
  }
  const heatmap = $("heatmap");
  if (heatmap.width !== overlay.width || heatmap.height !== overlay.height) {
    heatmap.width = overlay.width;
    heatmap.height = overlay.height;
  }
  const heatImage = await createImageBitmap(heat);
  heatmap.getContext("2d").drawImage(heatImage, 0, 0, heatmap.width, heatmap.height);
  heatImage.close();
}

function updateStats(result) {
  const times = state.resultTimes;
  const span = times.length > 1 ? (times[times.length - 1] - times[0]) / 1000 : 0;
  const fps = span > 0 ? (times.length - 1) / span : 0;
  const recent = state.latencies.slice(-10).sort((a, b) => a - b);
  const median = recent[Math.floor(recent.length / 2)];
  $("stat-frames").textContent = String(state.frames);
  $("stat-fps").textContent = fps ? fps.toFixed(1) : "–";
  $("stat-latency").textContent = `${median.toFixed(0)} ms`;
  const total = result.timings_ms?.total;
  $("stat-server").textContent = total === undefined ? "–" : `${total.toFixed(0)} ms`;
  $("stat-dropped").textContent = String(state.dropped);
  const entropy = result.summary?.mean_entropy;
  $("stat-entropy").textContent = entropy === undefined ? "–" : entropy.toFixed(3);
  drawLegend(result.summary?.class_fractions || {});
  drawSparkline();
}

function drawSparkline() {
  const canvas = $("sparkline");
  const ctx = canvas.getContext("2d");
  const values = state.latencies;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (values.length < 2) return;
  const max = Math.max(...values) * 1.1;
  const step = canvas.width / 59;
  ctx.strokeStyle = "#f0a030";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = (i + 60 - values.length) * step;
    const y = canvas.height - 2 - (v / max) * (canvas.height - 4);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = "#8b929c";
  ctx.font = "10px system-ui";
  ctx.fillText(`${max.toFixed(0)} ms`, 2, 10);
}

// ---------------------------------------------------------------- controls

function init() {
  $("controls").addEventListener("submit", (event) => event.preventDefault());
  const params = new URLSearchParams(location.search);
  $("api-key").value = params.get("token") || localStorage.getItem("streamuq-api-key") || "";
  $("api-key").addEventListener("change", () => {
    localStorage.setItem("streamuq-api-key", apiKey());
    loadModel();
  });
  $("file").addEventListener("change", (event) => {
    const files = [...event.target.files];
    if (files.length) start(() => fileSource(files));
  });
  $("webcam").addEventListener("click", () => start(webcamSource));
  $("stop").addEventListener("click", () => {
    stop();
    setStatus("Stopped.");
  });
  $("mode").addEventListener("change", () => {
    if (state.ws?.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ type: "mode", mode: $("mode").value }));
  });
  $("reset").addEventListener("click", () => {
    if (state.ws?.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ type: "reset" }));
  });
  $("uncertainty").addEventListener("change", () => {
    drawColorbar();
    redraw();
  });
  $("opacity").addEventListener("input", redraw);
  drawColorbar();
  loadModel().catch((err) => setStatus(`Cannot reach the server: ${err.message}`, true));
}

init();
