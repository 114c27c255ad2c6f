// The playground page: controls, a WebSocket to this page's session, and plotly views.
// Every number drawn here comes from the server (the leaky library); nothing of the model
// is computed in JavaScript. Every word comes from the message catalogue (/api/messages).
"use strict";

const state = {
  fields: null, defaults: null, titles: {}, params: {}, words: {}, lang: "en",
  last: null, running: false, ws: null, closed: null, updateTimes: [], updates: 0,
  firstView: true, deadKind: {}, rendered: 0, drawCost: {}, drawn: {},
  lessons: [], lesson: null, hide: new Set(),
};
window.playground = state; // read by the end-to-end test and handy in the console

const $ = (id) => document.getElementById(id);
const GROUPS = [
  ["section_data", ["dataset", "noise", "train_fraction", "seed"]],
  ["section_model", ["activation", "negative_slope", "prelu_init", "rrelu_lower", "rrelu_upper",
    "depth", "width", "init", "bias_shift", "compare", "compare_activation"]],
  ["section_training", ["optimizer", "learning_rate", "batch_size", "recycle_every"]],
];
const STEPS = { noise: 0.01, train_fraction: 0.05, negative_slope: 0.01, prelu_init: 0.01,
  rrelu_lower: 0.01, rrelu_upper: 0.01, bias_shift: 0.1 };
const HINTS = { bias_shift: "bias_shift_hint", compare: "compare_hint", recycle_every: "recycle_every_hint" };
const COLOURS = ["#1f77b4", "#d62728"];
const SEEN = "leaky-playground-seen"; // set once a visitor has opened the page
const FONT = { family: "system-ui, IPAexGothic, sans-serif", size: 11 };

function t(key, fields) {
  let text = state.words[key] ?? key;
  for (const [name, value] of Object.entries(fields || {})) {
    text = text.split("{" + name + "}").join(String(value));
  }
  return text;
}
const fmt = (v) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toPrecision(3));
const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(0) + "%");
const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

async function loadWords(lang) {
  const response = await fetch("/api/messages/" + lang);
  state.words = (await response.json()).messages;
}

function applyWords() {
  document.documentElement.lang = state.lang;
  for (const element of document.querySelectorAll("[data-msg]")) {
    element.textContent = t(element.dataset.msg);
  }
  document.title = t("title");
  $("play").textContent = t(state.running ? "pause" : "play");
}

// ------------------------------------------------------------------ controls
function optionLabel(name, choice) {
  if (name === "activation" || name === "compare_activation") return state.titles[choice] || choice;
  return null; // translated through data-msg
}

function buildControls() {
  const form = $("controls");
  form.innerHTML = "";
  for (const [section, names] of GROUPS) {
    const heading = document.createElement("h2");
    heading.dataset.msg = section;
    heading.id = section;
    form.appendChild(heading);
    for (const name of names) form.appendChild(buildControl(name, state.fields[name]));
  }
  form.addEventListener("submit", (event) => event.preventDefault());
}

function buildControl(name, spec) {
  const box = document.createElement("div");
  box.className = "control";
  box.id = "control-" + name;
  const label = document.createElement("label");
  label.htmlFor = "input-" + name;
  const title = document.createElement("span");
  title.dataset.msg = name;
  const value = document.createElement("span");
  value.className = "value";
  value.id = "value-" + name;
  label.append(title, value);
  let input;
  if (spec.kind === "choice") {
    input = document.createElement("select");
    for (const choice of spec.choices) {
      const option = document.createElement("option");
      option.value = choice;
      const text = optionLabel(name, choice);
      if (text) option.textContent = text;
      else option.dataset.msg = name + "_" + choice;
      input.appendChild(option);
    }
  } else if (spec.kind === "bool") {
    input = document.createElement("input");
    input.type = "checkbox";
  } else if (name === "seed") {
    input = document.createElement("input");
    input.type = "number";
    input.min = spec.low;
    input.max = spec.high;
    input.step = 1;
  } else {
    input = document.createElement("input");
    input.type = "range";
    if (spec.log) {
      input.min = Math.log10(spec.low);
      input.max = Math.log10(spec.high);
      input.step = 0.1;
    } else {
      input.min = spec.low;
      input.max = spec.high;
      input.step = spec.kind === "int" ? 1 : STEPS[name] || 0.01;
    }
    input.addEventListener("input", () => { value.textContent = fmt(readInput(name)); });
  }
  input.id = "input-" + name;
  input.name = name;
  input.addEventListener("change", () => sendParams({ [name]: readInput(name) }));
  box.append(label, input);
  if (HINTS[name]) {
    const hint = document.createElement("p");
    hint.className = "hint";
    hint.dataset.msg = HINTS[name];
    box.appendChild(hint);
  }
  const error = document.createElement("p");
  error.className = "error";
  error.id = "error-" + name;
  error.hidden = true;
  box.appendChild(error);
  return box;
}

function readInput(name) {
  const spec = state.fields[name];
  const input = $("input-" + name);
  if (spec.kind === "choice") return input.value;
  if (spec.kind === "bool") return input.checked;
  if (input.value === "") return input.value; // the server names the problem
  if (spec.log) return Number((10 ** Number(input.value)).toPrecision(2));
  return Number(input.value);
}

function showParams(params) {
  for (const [name, spec] of Object.entries(state.fields)) {
    const input = $("input-" + name);
    const value = params[name];
    if (spec.kind === "bool") input.checked = value;
    else if (spec.log) input.value = Math.log10(value);
    else input.value = value;
    const shown = $("value-" + name);
    if (shown) shown.textContent = spec.kind === "choice" || spec.kind === "bool" || name === "seed" ? "" : fmt(value);
  }
  showRelevantControls(params);
}

function showRelevantControls(params) {
  const used = new Set([params.activation]);
  if (params.compare) used.add(params.compare_activation);
  const unused = {
    negative_slope: !used.has("leaky_relu"), prelu_init: !used.has("prelu"),
    rrelu_lower: !used.has("rrelu"), rrelu_upper: !used.has("rrelu"),
    compare_activation: !params.compare,
  };
  // A control is shown when it matters to this setup and the link did not hide it.
  for (const name of Object.keys(state.fields)) {
    $("control-" + name).hidden = Boolean(unused[name]) || state.hide.has(name);
  }
  for (const [section, names] of GROUPS) {
    $(section).hidden = names.every((name) => state.hide.has(name));
  }
}

function clearErrors() {
  for (const element of document.querySelectorAll(".control .error")) {
    element.hidden = true;
    element.textContent = "";
    element.parentElement.classList.remove("invalid");
  }
}

function errorText(error) {
  const fields = { ...error, kind: t("kind_" + (error.kind || "float")) };
  fields.got = typeof error.got === "string" ? JSON.stringify(error.got) : String(error.got);
  return t("errors." + error.code, fields);
}

function showErrors(errors) {
  clearErrors();
  const unplaced = [];
  for (const [name, error] of Object.entries(errors)) {
    const element = $("error-" + name);
    if (element) {
      element.textContent = errorText(error);
      element.hidden = false;
      element.parentElement.classList.add("invalid");
    } else {
      unplaced.push(errorText(error));
    }
  }
  if (unplaced.length) banner(unplaced.join(" "));
}

function banner(text) {
  const element = $("banner");
  element.textContent = text;
  element.hidden = !text;
}

// ------------------------------------------------------------------ the page's URL
// The link holds the lesson, the settings that differ from its preset (from the defaults
// outside a lesson), the hidden controls and the language: opening it reproduces the view.
function currentLesson() {
  return state.lesson === null ? null : state.lessons[state.lesson];
}

function baseParams() {
  const lesson = currentLesson();
  return { ...state.defaults, ...(lesson ? lesson.preset : {}) };
}

function writeUrl() {
  const query = new URLSearchParams();
  const lesson = currentLesson();
  if (lesson) query.set("lesson", lesson.key);
  const base = baseParams();
  for (const [name, value] of Object.entries(state.params)) {
    if (value !== base[name]) query.set(name, String(value));
  }
  if (state.hide.size) query.set("hide", [...state.hide].join(","));
  query.set("lang", state.lang);
  history.replaceState(null, "", "#" + query.toString());
}

function readUrl() {
  const hash = location.hash.slice(1);
  const query = new URLSearchParams(hash);
  const params = {};
  let lang = null;
  let lesson = null;
  let hide = [];
  for (const [name, text] of query) {
    if (name === "lang") { lang = text === "ja" ? "ja" : "en"; continue; }
    if (name === "lesson") { lesson = text; continue; }
    if (name === "hide") { hide = text.split(",").filter(Boolean); continue; }
    const spec = state.fields[name];
    if (!spec || spec.kind === "choice") params[name] = text;
    else if (spec.kind === "bool") params[name] = text === "true" ? true : text === "false" ? false : text;
    else params[name] = text !== "" && Number.isFinite(Number(text)) ? Number(text) : text;
  }
  return { params, lang, lesson, hide, empty: hash === "" };
}

function browserLanguage() {
  const first = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
  return first.toLowerCase().startsWith("ja") ? "ja" : "en";
}

function firstVisit() {
  try {
    const first = !localStorage.getItem(SEEN);
    localStorage.setItem(SEEN, "1");
    return first;
  } catch (error) {
    return true; // no storage (a private window): every visit is a first one
  }
}

// ------------------------------------------------------------------ the session
function send(command) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(command));
}
function sendParams(params) {
  state.changeSentAt = performance.now();
  send({ type: "params", params });
}

function connect(initial) {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  state.ws = ws;
  ws.onopen = () => {
    if (!Object.keys(initial).length) return;
    // The session starts from the defaults; the link's settings follow at once. Its views
    // of the defaults are held back, so a lesson never opens on the wrong network.
    state.holding = true;
    sendParams(initial);
  };
  ws.onmessage = (event) => handle(JSON.parse(event.data));
  ws.onclose = () => {
    state.ws = null;
    if (!state.closed) banner(t("status_disconnected"));
    $("status-state").textContent = "";
  };
}

function handle(message) {
  if (message.type === "update" && state.holding) {
    state.held = message;
  } else if (message.type === "update") {
    state.last = message;
    state.running = message.running;
    state.params = message.params;
    state.updates += 1;
    const now = performance.now();
    state.updateTimes.push(now);
    if (state.acceptedSentAt !== undefined) {
      // The first view after the server took a setting has it: time to its drawing.
      state.latencySentAt = state.acceptedSentAt;
      state.acceptedSentAt = undefined;
    }
    if (state.firstView) { state.firstView = false; showParams(state.params); writeUrl(); }
    scheduleRender(message);
  } else if (message.type === "accepted") {
    state.holding = false; // the view with these settings comes next
    state.acceptedSentAt = state.changeSentAt;
    state.changeSentAt = undefined;
    state.params = message.params;
    clearErrors();
    showParams(state.params);
    writeUrl();
  } else if (message.type === "errors") {
    state.changeSentAt = undefined;
    if (state.holding) { // the link's settings were refused: show the session as it is
      state.holding = false;
      if (state.held) handle(state.held);
    }
    showErrors(message.errors);
  } else if (message.type === "born_dead") {
    if (state.last) state.last.born_dead = message.born_dead;
    renderBornDead(message.born_dead);
    renderChecks();
  } else if (message.type === "error") {
    // Errors the page itself can cause carry a catalogue key; the rest are in English.
    banner(message.code && state.words[message.code] ? t(message.code, message) : message.message);
  } else if (message.type === "refused") {
    state.closed = "refused";
    banner(t("refused", { max_sessions: message.max_sessions }));
  } else if (message.type === "closed") {
    state.closed = "idle";
    banner(t("idle_closed", { idle_timeout: message.idle_timeout }));
  }
}

// ------------------------------------------------------------------ views
const CONFIG = { displaylogo: false, responsive: true };
function config(id) {
  return { ...CONFIG, toImageButtonOptions: { format: "png", filename: "leaky-playground-" + id } };
}
function layout(extra) {
  return { margin: { l: 52, r: 10, t: 24, b: 40 }, font: FONT, uirevision: "keep",
    legend: { orientation: "h", x: 0, y: 1.0, yanchor: "bottom" }, ...extra };
}
// Redraw a view only when what it shows changed (the activation's curve, the estimate).
function drawOnChange(id, key, drawing) {
  const full = key + "|" + state.lang;
  if (state.drawn[id] === full && $(id).data) return;
  drawing();
  state.drawn[id] = full;
}

function draw(id, traces, extra) {
  const start = performance.now();
  Plotly.react($(id), traces, layout(extra), config(id));
  state.drawCost[id] = performance.now() - start;
}

// Views arrive several times a second; drawing them all could keep the page's only thread
// busy. Draw the newest one at the next frame, and leave the thread idle at least as long
// as the last drawing took, so clicks and sliders stay responsive.
function scheduleRender(m) {
  state.pending = m;
  if (state.renderScheduled) return;
  state.renderScheduled = true;
  const wait = Math.max(0, (state.renderEnd || 0) + (state.renderCost || 0) - performance.now());
  setTimeout(() => requestAnimationFrame(() => {
    state.renderScheduled = false;
    const start = performance.now();
    render(state.pending);
    state.renderEnd = performance.now();
    state.renderCost = state.renderEnd - start;
    if (state.latencySentAt !== undefined) {
      state.lastLatency = state.renderEnd - state.latencySentAt;
      state.latencySentAt = undefined;
    }
    state.rendered += 1;
  }), wait);
}

function render(m) {
  applyStatus(m);
  const nets = m.networks;
  ensureColumns(nets.length);
  renderLoss(nets);
  renderGradients(nets);
  renderActivation(nets);
  renderSlopes(nets);
  nets.forEach((net, i) => renderNetwork(net, i, m));
  renderBornDead(m.born_dead);
  renderChecks();
  document.body.dataset.step = m.step; // lets a test wait for a given step
}

function applyStatus(m) {
  const now = performance.now();
  state.updateTimes = state.updateTimes.filter((time) => now - time < 2000);
  const perSecond = state.updateTimes.length / 2;
  $("status-state").textContent = t(m.running ? "status_running" : "status_paused");
  $("status-step").textContent = t("status_step", { step: m.step });
  $("status-rates").textContent = t("status_rates", {
    steps_per_second: m.steps_per_second ? m.steps_per_second.toFixed(0) : "–",
    updates_per_second: perSecond.toFixed(1),
  });
  $("play").textContent = t(m.running ? "pause" : "play");
}

function ensureColumns(count) {
  const row = $("networks");
  if (row.children.length === count) return;
  for (const plot of row.querySelectorAll(".js-plotly-plot")) Plotly.purge(plot);
  row.innerHTML = "";
  for (let i = 0; i < count; i += 1) {
    const column = document.createElement("div");
    column.className = "network";
    column.id = "network-" + i;
    column.innerHTML = `<h3 id="net-title-${i}"></h3><p class="summary" id="net-summary-${i}"></p>
      <figure><figcaption id="main-caption-${i}"></figcaption><div class="plot" id="view-main-${i}"></div></figure>
      <figure><figcaption><select id="dead-kind-${i}"><option value="dead" data-msg="show_dead"></option>
      <option value="never_active" data-msg="show_never_active"></option></select>
      <span id="dead-caption-${i}"></span></figcaption><div class="plot" id="view-dead-${i}"></div></figure>
      <figure><figcaption data-msg="view_units"></figcaption><div class="plot units" id="view-units-${i}"></div></figure>`;
    row.appendChild(column);
    for (const element of column.querySelectorAll("[data-msg]")) element.textContent = t(element.dataset.msg);
    const select = $("dead-kind-" + i);
    select.value = state.deadKind[i] || "dead";
    select.addEventListener("change", () => { state.deadKind[i] = select.value; if (state.last) render(state.last); });
  }
}

function netName(net) { return net.title; }

function renderLoss(nets) {
  const traces = [];
  nets.forEach((net, i) => {
    const colour = COLOURS[nets.length > 1 ? 1 - i : 0];
    traces.push({ x: net.history.step, y: net.history.train_loss, name: `${netName(net)} ${t("train")}`,
      mode: "lines", line: { color: colour } });
    traces.push({ x: net.history.step, y: net.history.test_loss, name: `${netName(net)} ${t("test")}`,
      mode: "lines", line: { color: colour, dash: "dot" } });
  });
  draw("view-loss", traces, { xaxis: { title: { text: t("axis_step") } },
    yaxis: { type: "log", title: { text: t("axis_loss") } } });
}

function renderGradients(nets) {
  const traces = nets.map((net, i) => ({
    x: net.gradients.norms.map((_, k) => k + 1),
    y: net.gradients.norms.map((v) => (v && v > 0 ? v : null)),
    name: netName(net), mode: "lines+markers",
    line: { color: COLOURS[nets.length > 1 ? 1 - i : 0] },
  }));
  draw("view-gradients", traces, { xaxis: { title: { text: t("axis_layer_weight") }, dtick: 1 },
    yaxis: { type: "log", title: { text: t("axis_grad") }, exponentformat: "power" } });
  $("verdicts").textContent = nets.map((net) => t("gradient_verdict", {
    name: netName(net), verdict: t("verdict_" + net.gradients.verdict) })).join(" · ");
  $("verdicts").dataset.verdicts = nets.map((net) => net.gradients.verdict).join(",");
}

function renderActivation(nets) {
  const key = JSON.stringify(nets.map((net) => [net.activation, net.curve.df[0], net.curve.f[0]]));
  drawOnChange("view-activation", key, () => drawActivation(nets));
}

function drawActivation(nets) {
  const traces = [];
  nets.forEach((net, i) => {
    const colour = COLOURS[nets.length > 1 ? 1 - i : 0];
    traces.push({ x: net.curve.x, y: net.curve.f, name: netName(net), mode: "lines", line: { color: colour } });
    traces.push({ x: net.curve.x, y: net.curve.df, name: `${netName(net)} ${t("derivative")}`,
      mode: "lines", line: { color: colour, dash: "dash" } });
  });
  draw("view-activation", traces, { xaxis: { title: { text: "x" } } });
}

// PReLU's learned slopes: each hidden layer's mean slope over the steps.
function renderSlopes(nets) {
  const learned = nets.filter((net) => net.slopes);
  $("slopes").hidden = !learned.length;
  if (!learned.length) return;
  const traces = [];
  for (const net of learned) {
    net.slopes.forEach((_, layer) => traces.push({ x: net.history.step,
      y: net.history.slope.map((row) => (row ? row[layer] : null)), mode: "lines",
      name: t("prelu.layer", { layer: layer + 1 }) }));
  }
  draw("view-slopes", traces, { xaxis: { title: { text: t("axis_step") } },
    yaxis: { title: { text: t("prelu.axis") } } });
}

function renderNetwork(net, i, m) {
  $("net-title-" + i).textContent = netName(net);
  $("net-title-" + i).dataset.activation = net.activation;
  const summary = $("net-summary-" + i);
  summary.textContent = t("summary", { loss: fmt(net.train_loss), dead: pct(mean(net.dead)), never: pct(mean(net.never_active)) })
    + (net.recycled ? " · " + t("recycled", { count: net.recycled }) : "")
    + (net.ms_per_step ? " · " + t("timing.ms_per_step", { ms: net.ms_per_step.toFixed(3) }) : "");
  summary.dataset.recycled = net.recycled || 0;
  summary.dataset.msPerStep = net.ms_per_step ?? "";
  summary.dataset.dead = mean(net.dead);
  summary.dataset.neverActive = mean(net.never_active);
  summary.dataset.loss = net.train_loss;
  renderMain(net, i, m);
  const kind = state.deadKind[i] || "dead";
  const history = net.history[kind];
  const layers = history.length ? history[history.length - 1].length : 0;
  const z = [];
  for (let layer = 0; layer < layers; layer += 1) z.push(history.map((row) => row[layer]));
  $("dead-caption-" + i).textContent = t(kind === "dead" ? "view_dead" : "view_never_active");
  draw("view-dead-" + i, [{ type: "heatmap", x: net.history.step, y: z.map((_, k) => k + 1), z,
    zmin: 0, zmax: 1, colorscale: [[0, "#ffffff"], [1, "#b2182b"]], colorbar: { thickness: 10, title: { text: t("axis_fraction"), side: "right" } } }],
  { xaxis: { title: { text: t("axis_step") } }, yaxis: { title: { text: t("axis_layer") }, autorange: "reversed", dtick: 1 } });
  const deadX = [];
  const deadY = [];
  net.dead_units.forEach((units, layer) => units.forEach((unit) => { deadX.push(unit); deadY.push(layer + 1); }));
  const width = net.firing.length ? net.firing[0].length : 0;
  draw("view-units-" + i, [
    { type: "heatmap", z: net.firing, x: [...Array(width).keys()], y: net.firing.map((_, k) => k + 1),
      zmin: 0, zmax: 1, colorscale: "Viridis", xgap: width <= 64 ? 1 : 0, ygap: 1,
      colorbar: { thickness: 10 } },
    { type: "scatter", mode: "markers", x: deadX, y: deadY, name: "✕",
      marker: { symbol: "x", color: "#ff2a2a", size: width <= 32 ? 9 : 5 }, showlegend: false },
  ], { xaxis: { title: { text: t("axis_unit") } }, yaxis: { title: { text: t("axis_layer") }, autorange: "reversed", dtick: 1 } });
}

function renderMain(net, i, m) {
  const data = m.data;
  const id = "view-main-" + i;
  const [low, high] = data.bounds;
  if (data.classes === null) {
    $("main-caption-" + i).textContent = t("view_curve");
    draw(id, [
      { x: data.train.x.map((p) => p[0]), y: data.train.y, mode: "markers", name: t("train"),
        marker: { size: 4, color: "#999" } },
      { x: data.test.x.map((p) => p[0]), y: data.test.y, mode: "markers", name: t("test"),
        marker: { size: 5, color: "#999", symbol: "circle-open" } },
      { x: net.prediction.x, y: net.prediction.y, mode: "lines", name: netName(net),
        line: { color: COLOURS[m.networks.length > 1 ? 1 - i : 0], width: 2 } },
    ], { xaxis: { range: [low, high] } });
    return;
  }
  $("main-caption-" + i).textContent = t("view_boundary");
  const axis = [];
  for (let k = 0; k < m.grid.points; k += 1) axis.push(low + ((high - low) * k) / (m.grid.points - 1));
  const traces = [{ type: "heatmap", x: axis, y: axis, z: net.prediction.z, zmin: 0, zmax: 1,
    colorscale: [[0, "#f4a259"], [0.5, "#f7f7f7"], [1, "#5b8fd1"]], opacity: 0.75,
    colorbar: { thickness: 10, title: { text: t("probability_class"), side: "right" } } }];
  for (const [part, symbol] of [["train", "circle"], ["test", "circle-open"]]) {
    for (const label of [0, 1]) {
      const points = data[part].x.filter((_, k) => data[part].y[k] === label);
      traces.push({ type: "scatter", mode: "markers", x: points.map((p) => p[0]), y: points.map((p) => p[1]),
        name: `${t(part)} ${label}`, showlegend: false,
        marker: { size: 5, symbol, color: label ? "#1f4e9c" : "#c2571a", line: { width: 1, color: label ? "#1f4e9c" : "#c2571a" } } });
    }
  }
  draw(id, traces, { xaxis: { range: [low, high], constrain: "domain" }, yaxis: { range: [low, high], scaleanchor: "x" } });
}

function renderBornDead(estimate) {
  if (!estimate) return;
  const rows = [["relu", "ReLU"], ["leaky_relu", "Leaky ReLU"]];
  const lines = rows.map(([key, name]) => {
    const r = estimate[key];
    return t("born_dead_line", { name, born_dead: r.born_dead, trials: r.trials, probability: fmt(r.probability),
      low: fmt(r.ci95[0]), high: fmt(r.ci95[1]) });
  });
  if (!estimate.done) lines.push(t("born_dead_running"));
  const box = $("born-dead-lines");
  box.innerHTML = "";
  for (const line of lines) { const p = document.createElement("div"); p.textContent = line; box.appendChild(p); }
  box.dataset.relu = estimate.relu.probability;
  box.dataset.leaky = estimate.leaky_relu.probability;
  $("born-dead-note").textContent = t("born_dead_note", { width: estimate.width, depth: estimate.depth });
  const ps = rows.map(([key]) => estimate[key].probability || 0);
  drawOnChange("view-born-dead", JSON.stringify([estimate.relu, estimate.leaky_relu]), () => draw("view-born-dead", [{ type: "bar", x: rows.map(([, name]) => name), y: ps,
    marker: { color: ["#d62728", "#1f77b4"] },
    error_y: { type: "data", symmetric: false,
      array: rows.map(([key], k) => estimate[key].ci95[1] - ps[k]),
      arrayminus: rows.map(([key], k) => ps[k] - estimate[key].ci95[0]) } }],
  { yaxis: { range: [0, 1] }, margin: { l: 36, r: 10, t: 8, b: 24 } }));
}

// ------------------------------------------------------------------ lessons
function renderLesson() {
  const lesson = currentLesson();
  $("lesson").hidden = !lesson;
  $("lessons-open").hidden = Boolean(lesson);
  if (!lesson) return;
  const key = "lessons." + lesson.key + ".";
  $("lesson").dataset.lesson = lesson.key;
  $("lesson-number").textContent = t("lessons.number", { number: state.lesson + 1, count: state.lessons.length });
  $("lesson-title").textContent = t(key + "title");
  $("lesson-story").textContent = t(key + "story");
  $("lesson-try").textContent = t(key + "try");
  $("lesson-watch").textContent = t(key + "watch");
  $("lesson-train").textContent = t("lessons.train", { steps: lesson.steps });
  $("lesson-back").disabled = state.lesson === 0;
  $("lesson-next").disabled = state.lesson === state.lessons.length - 1;
  // The born-dead estimate is at the bottom of the page; its own lesson shows it first.
  const bornDead = document.querySelector("figure.born-dead");
  if (lesson.checks.some((check) => check.metric === "born_dead")) $("views").prepend(bornDead);
  else $("views").append(bornDead);
  renderChecks();
}

// The lesson's training in ten parts, so the views move while it trains (the batches,
// and so the numbers, are the same as in one go).
function trainLesson() {
  const steps = currentLesson().steps;
  const parts = Math.min(10, steps);
  for (let k = 0; k < parts; k += 1) {
    send({ type: "step", steps: Math.floor((steps * (k + 1)) / parts) - Math.floor((steps * k) / parts) });
  }
}

// The number a check reads from a view: the page's copy of leaky.playground.lessons.measure.
function measure(view, check) {
  if (check.metric === "born_dead") {
    const estimate = view.born_dead || {};
    const row = estimate[check.activation];
    return estimate.done && row ? row.probability : null;
  }
  const net = view.networks.find((n) => n.activation === check.activation);
  if (!net) return null;
  if (check.metric === "gradient_ratio") return net.gradients.ratio ?? null;
  if (check.metric === "dead") return net.dead.length ? mean(net.dead) : null;
  if (check.metric === "train_loss") return net.train_loss ?? null;
  if (!net.slopes) return null; // slope_change
  const start = view.params.prelu_init;
  return Math.max(...net.slopes.map((layer) => Math.abs(mean(layer) - start)));
}

function showMeasure(metric, value) {
  if (value === null || value === undefined) return "–";
  if (metric === "dead" || metric === "born_dead") return pct(value);
  if (value !== 0 && Math.abs(value) < 0.01) return value.toExponential(1);
  return String(Number(Number(value).toPrecision(3))); // 0.1, not 0.100
}

function renderChecks() {
  const lesson = currentLesson();
  if (!lesson) return;
  const list = $("lesson-checks");
  list.innerHTML = "";
  let all = true;
  for (const check of lesson.checks) {
    const value = state.last ? measure(state.last, check) : null;
    const holds = value !== null && (check.at_most === null || value <= check.at_most)
      && (check.at_least === null || value >= check.at_least);
    all = all && holds;
    const [low, high] = [check.at_least, check.at_most].map((v) => showMeasure(check.metric, v));
    const bound = check.at_most === null ? t("lessons.at_least", { bound: low })
      : check.at_least === null ? t("lessons.at_most", { bound: high })
        : t("lessons.between", { low, high });
    const item = document.createElement("li");
    item.className = holds ? "holds" : "";
    item.dataset.value = value === null ? "" : String(value);
    item.dataset.holds = String(holds);
    item.textContent = t("lessons.check", { name: state.titles[check.activation] || check.activation,
      metric: t("lessons.metric_" + check.metric), value: showMeasure(check.metric, value), bound })
      + " " + t(holds ? "lessons.shown" : "lessons.not_yet");
    list.appendChild(item);
  }
  list.dataset.holds = String(all);
}

// Open lesson ``index`` from step 0: its preset over the defaults, paused.
function openLesson(index) {
  state.lesson = index;
  send({ type: "pause" });
  sendParams(baseParams());
  send({ type: "reset" });
  renderLesson();
  writeUrl();
}

function closeLessons() {
  state.lesson = null;
  $("views").append(document.querySelector("figure.born-dead"));
  renderLesson();
  writeUrl();
}

// ------------------------------------------------------------------ export
function exportJson() {
  const blob = new Blob([JSON.stringify({ exported: new Date().toISOString(), params: state.params,
    view: state.last }, null, 1)], { type: "application/json" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = "leaky-playground.json";
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

// The setup as a Python script (leaky.playground.export_script) that trains as many steps.
async function exportPython() {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(state.params)) query.set(name, String(value));
  query.set("steps", String(state.last ? state.last.step : 0));
  const response = await fetch("/api/export?" + query.toString());
  if (!response.ok) {
    banner(t("export.failed", { message: (await response.json()).error }));
    return;
  }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([await response.text()], { type: "text/x-python" }));
  link.download = "leaky_playground.py";
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function exportPng() {
  for (const plot of document.querySelectorAll(".js-plotly-plot")) {
    Plotly.downloadImage(plot, { format: "png", filename: "leaky-playground-" + plot.id,
      width: plot.clientWidth, height: plot.clientHeight });
  }
}

// ------------------------------------------------------------------ start
async function main() {
  const info = await (await fetch("/api/fields")).json();
  state.fields = info.fields;
  state.defaults = info.defaults;
  state.titles = info.titles;
  state.lessons = (await (await fetch("/api/lessons")).json()).lessons;
  const url = readUrl();
  const first = firstVisit();
  state.lang = url.lang || browserLanguage();
  await loadWords(state.lang);
  buildControls();
  applyWords();
  // A first-time visitor starts with the first lesson; a link names its own lesson, or none.
  const problems = [];
  if (url.lesson !== null) {
    const index = state.lessons.findIndex((lesson) => lesson.key === url.lesson);
    if (index < 0) {
      problems.push(t("link.unknown_lesson", { lesson: url.lesson,
        lessons: state.lessons.map((lesson) => lesson.key).join(", ") }));
    } else state.lesson = index;
  } else if (url.empty && first) state.lesson = 0;
  const unknown = url.hide.filter((name) => !state.fields[name]);
  if (unknown.length) {
    problems.push(t("link.unknown_hide", { names: unknown.join(", "), controls: Object.keys(state.fields).join(", ") }));
  }
  state.hide = new Set(url.hide.filter((name) => state.fields[name]));
  const params = state.lesson === null ? url.params : { ...baseParams(), ...url.params };
  showParams({ ...state.defaults, ...params });
  renderLesson();
  $("lang").value = state.lang;
  $("status-state").textContent = t("status_connecting");
  $("play").addEventListener("click", () => send({ type: state.running ? "pause" : "play" }));
  $("step").addEventListener("click", () => send({ type: "step", steps: 1 }));
  $("reset").addEventListener("click", () => send({ type: "reset" }));
  $("export-json").addEventListener("click", exportJson);
  $("export-png").addEventListener("click", exportPng);
  $("export-python").addEventListener("click", exportPython);
  $("lessons-open").addEventListener("click", () => openLesson(0));
  $("lesson-back").addEventListener("click", () => openLesson(state.lesson - 1));
  $("lesson-next").addEventListener("click", () => openLesson(state.lesson + 1));
  $("lesson-close").addEventListener("click", closeLessons);
  $("lesson-train").addEventListener("click", trainLesson);
  $("lang").addEventListener("change", async () => {
    state.lang = $("lang").value;
    await loadWords(state.lang);
    applyWords();
    for (const select of document.querySelectorAll("#controls select")) select.dispatchEvent(new Event("relabel"));
    renderLesson();
    if (state.last) render(state.last);
    if (state.params && Object.keys(state.params).length) writeUrl();
  });
  connect(params);
  if (problems.length) banner(problems.join(" "));
}
main();
