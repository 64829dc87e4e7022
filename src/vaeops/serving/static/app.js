// The page behind "why sample z?": every number comes from the server (/explain), computed from the exported graphs.
"use strict";

const REQUEST = { samples: 16, seed: 0, ks: [1, 10, 100, 1000], repeats: 10 };
const SHOWN_SAMPLES = 8;
let imageShape = null;

async function fetchJSON(url, options) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail ? JSON.stringify(body.detail) : JSON.stringify(body));
  return body;
}

function fmt(value, digits = 3) {
  return Number(value).toFixed(digits);
}

function pixels(values, shape) {
  // One grey-level canvas per image; CSS scales it up with crisp pixels.
  const [h, w] = shape;
  const flat = values.flat(Infinity);
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  canvas.className = "pixels";
  const context = canvas.getContext("2d");
  const data = context.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const v = Math.max(0, Math.min(255, Math.round(flat[i] * 255)));
    data.data.set([v, v, v, 255], 4 * i);
  }
  context.putImageData(data, 0, 0);
  return canvas;
}

function show(selector, values, scale = 1) {
  const target = document.querySelector(selector);
  target.replaceChildren(pixels(values.flat(Infinity).map((v) => v * scale), imageShape));
}

function number(id, value, text) {
  const cell = document.getElementById(id);
  cell.dataset.value = String(value);
  cell.textContent = text === undefined ? fmt(value) : text;
}

function verdict(result) {
  const low = result.jensen_gap - 1.96 * result.jensen_gap_se;
  const high = result.jensen_gap + 1.96 * result.jensen_gap_se;
  const gap = `${fmt(Math.abs(result.jensen_gap), 2)} nats (95% Monte-Carlo interval over the draws ${fmt(low, 2)} to ${fmt(high, 2)})`;
  if (low > 0) {
    return `For this image the plug-in log p(x|\u03bc) overstates E_q[log p(x|z)] by ${gap}: decoding the mean ` +
      "scores the image better than the average over the posterior, so it cannot stand in for the reconstruction term.";
  }
  if (high < 0) {
    return `For this image the plug-in log p(x|\u03bc) understates E_q[log p(x|z)] by ${gap}: the decoder's ` +
      "log-likelihood is not concave in z here, so Jensen's inequality does not fix the sign of the gap.";
  }
  return `For this image the Jensen gap (${fmt(result.jensen_gap, 2)} nats, 95% Monte-Carlo interval over the draws ${fmt(low, 2)} to ` +
    `${fmt(high, 2)}) is not distinguishable from zero with ${result.samples} draws.`;
}

function niceTicks(lo, hi, wanted = 5) {
  // about `wanted` ticks at 1, 2 or 5 x 10^n, labelled with the decimals their step needs
  const raw = (hi - lo) / wanted, power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push({value: v, label: fmt(v, digits)});
  return out;
}

function chart(rows) {
  const svg = document.getElementById("k-chart");
  const width = 560, height = 260, left = 64, right = 140, top = 16, bottom = 36;
  const values = rows.flatMap((r) => [r.elbo_mean - r.elbo_std, r.elbo_mean + r.elbo_std, r.iwae_mean - r.iwae_std, r.iwae_mean + r.iwae_std]);
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi - lo < 1e-6) { lo -= 1; hi += 1; }
  const pad = 0.06 * (hi - lo);  // every error bar inside the axes, with room
  lo -= pad; hi += pad;
  const ticks = niceTicks(lo, hi);
  const logK = rows.map((r) => Math.log10(r.k));
  const kMin = Math.min(...logK), kMax = Math.max(...logK) === kMin ? kMin + 1 : Math.max(...logK);
  const x = (k) => left + (Math.log10(k) - kMin) / (kMax - kMin) * (width - left - right);
  const y = (v) => top + (hi - v) / (hi - lo) * (height - top - bottom);
  const parts = [`<line x1="${left}" y1="${height - bottom}" x2="${width - right}" y2="${height - bottom}" stroke="#444"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${height - bottom}" stroke="#444"/>`,
    `<text x="${(left + width - right) / 2}" y="${height - 6}" text-anchor="middle" font-size="12">K (log scale)</text>`,
    ...ticks.flatMap((t) => [
      `<line x1="${left}" y1="${y(t.value)}" x2="${width - right}" y2="${y(t.value)}" stroke="#ddd"/>`,
      `<text class="y-tick" x="${left - 8}" y="${y(t.value) + 4}" text-anchor="end" font-size="11">${t.label}</text>`])];
  rows.forEach((r) => parts.push(`<text x="${x(r.k)}" y="${height - bottom + 14}" text-anchor="middle" font-size="11">${r.k}</text>`));
  [["elbo", "#1f77b4", "ELBO_K"], ["iwae", "#d62728", "L_K (IWAE)"]].forEach(([key, colour, label], i) => {
    const points = rows.map((r) => `${x(r.k)},${y(r[key + "_mean"])}`).join(" ");
    parts.push(`<polyline class="series-${key}" points="${points}" fill="none" stroke="${colour}" stroke-width="2"/>`);
    rows.forEach((r) => {
      const m = r[key + "_mean"], s = r[key + "_std"];
      parts.push(`<line x1="${x(r.k)}" y1="${y(m - s)}" x2="${x(r.k)}" y2="${y(m + s)}" stroke="${colour}"/>`,
        `<circle cx="${x(r.k)}" cy="${y(m)}" r="3" fill="${colour}"/>`);
    });
    parts.push(`<text x="${width - right + 10}" y="${top + 16 + 18 * i}" fill="${colour}" font-size="12">${label}</text>`);
  });
  svg.innerHTML = parts.join("");
  // L_K >= ELBO_K holds in expectation; a single estimate can fall below by Monte-Carlo noise: say so where it does
  const crossed = rows.filter((r) => r.elbo_mean > r.iwae_mean);
  document.getElementById("k-note").textContent = crossed.length ?
    `At K = ${crossed.map((r) => r.k).join(", ")} the ELBO_K estimate is above L_K: Monte-Carlo noise. L_K >= ELBO_K ` +
    "holds in expectation, not for every estimate; compare the spread (sd) in the table." : "";
  const body = document.querySelector("#k-table tbody");
  body.replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    // the spread of one estimate over the R repeats (sd), not an interval
    tr.innerHTML = `<td>${r.k}</td><td data-value="${r.elbo_mean}">${fmt(r.elbo_mean)} (sd ${fmt(r.elbo_std)})</td>` +
      `<td data-value="${r.iwae_mean}">${fmt(r.iwae_mean)} (sd ${fmt(r.iwae_std)})</td>`;
    return tr;
  }));
}

let latestRequest = 0;  // a newer choice wins: an older answer arriving late is dropped

async function explain(image, label) {
  const request = ++latestRequest;
  document.getElementById("chosen").textContent = label;
  const status = document.getElementById("gallery-note");
  status.textContent = "computing...";
  status.classList.remove("error");
  try {
    const result = await fetchJSON("/explain", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ image, ...REQUEST }) });
    if (request !== latestRequest) return;
    show("#panel-original .img", result.original);
    show("#panel-mean .img", result.mean_decode);
    show("#panel-average .img", result.sample_average);
    const spread = result.sample_std.flat(Infinity);
    const top = Math.max(...spread, 1e-6);  // scaled to its own maximum, stated in the caption
    show("#panel-spread .img", result.sample_std, 1 / top);
    document.querySelector("#panel-spread figcaption").textContent = `per-pixel std of the sampled decodes (white = ${fmt(top, 2)})`;
    document.getElementById("panel-samples").replaceChildren(
      ...result.sampled_decodes.slice(0, SHOWN_SAMPLES).map((d) => pixels(d, imageShape)));
    number("num-log-px-mu", result.log_px_mu);
    number("num-log-px-predictive", result.log_px_predictive);
    // ± is the 95% Monte-Carlo interval over the draws (this image fixed)
    number("num-e-log-px", result.e_log_px, `${fmt(result.e_log_px)} ± ${fmt(1.96 * result.e_log_px_se)} (${result.samples} draws)`);
    number("num-jensen-gap", result.jensen_gap, `${fmt(result.jensen_gap)} ± ${fmt(1.96 * result.jensen_gap_se)}`);
    number("num-kl", result.kl);
    number("num-elbo", result.elbo);
    number("num-plugin-elbo", result.plugin_elbo);
    document.getElementById("verdict").textContent = verdict(result);
    chart(result.estimators);
    document.getElementById("result").hidden = false;
    status.textContent = "";
  } catch (error) {
    status.textContent = `The server refused this image: ${error.message}`;
    status.classList.add("error");
  }
}

async function loadGallery() {
  const gallery = await fetchJSON("/gallery");
  imageShape = gallery.image_shape;
  const holder = document.getElementById("gallery");
  if (!gallery.images.length) {
    document.getElementById("gallery-note").textContent = "This model was exported without a gallery: draw an image.";
  }
  gallery.images.forEach((image, i) => {
    const button = document.createElement("button");
    button.className = "thumb";
    button.title = `test image ${i}, label ${gallery.labels[i]}`;
    button.append(pixels(image, imageShape));
    button.addEventListener("click", () => {
      document.querySelectorAll(".thumb.chosen").forEach((b) => b.classList.remove("chosen"));
      button.classList.add("chosen");
      explain(image, `test image ${i} (label ${gallery.labels[i]})`);
    });
    holder.append(button);
  });
  // open on the first test image, so the page shows an answer before anyone clicks
  holder.querySelector(".thumb")?.click();
}

function setupDrawing() {
  const canvas = document.getElementById("draw");
  const context = canvas.getContext("2d");
  let drawing = false;
  const clear = () => { context.fillStyle = "#000"; context.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  };
  canvas.addEventListener("pointerdown", (e) => { drawing = true; context.beginPath(); context.moveTo(...at(e)); });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    context.strokeStyle = "#fff";
    context.lineWidth = canvas.width / 10;
    context.lineCap = "round";
    context.lineTo(...at(e));
    context.stroke();
  });
  window.addEventListener("pointerup", () => { drawing = false; });
  document.getElementById("draw-clear").addEventListener("click", clear);
  document.getElementById("draw-use").addEventListener("click", () => {
    // Average the drawing down to the model's image size: grey levels in [0, 1].
    const [h, w] = imageShape;
    const source = context.getImageData(0, 0, canvas.width, canvas.height).data;
    const image = [];
    for (let r = 0; r < h; r++) {
      const row = [];
      for (let c = 0; c < w; c++) {
        let sum = 0, count = 0;
        for (let y = Math.floor(r * canvas.height / h); y < Math.floor((r + 1) * canvas.height / h); y++) {
          for (let x = Math.floor(c * canvas.width / w); x < Math.floor((c + 1) * canvas.width / w); x++) {
            sum += source[4 * (y * canvas.width + x)] / 255;
            count += 1;
          }
        }
        row.push(count ? sum / count : 0);
      }
      image.push(row);
    }
    explain(image, "your drawing");
  });
}

function describe(value) {
  if (value === null || value === undefined) return "not recorded";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

async function loadCard() {
  const card = await fetchJSON("/model-card");
  const metrics = card.metrics || {};
  const rows = [
    ["served version", card.model_version], ["trained on", `${describe(card.data.dataset)} (data ${String(card.data_sha256).slice(0, 12)}...)`],
    ["epoch", card.epoch], ["likelihood", card.likelihood], ["image shape", describe(card.image_shape)],
    ["latent dimensions", card.latent_dim],
    ["test NLL estimate (nats)", metrics.nll === undefined ? "not recorded" : metrics.nll_ci95_low === undefined ?
      fmt(metrics.nll, 2) : `${fmt(metrics.nll, 2)} [${fmt(metrics.nll_ci95_low, 2)}, ${fmt(metrics.nll_ci95_high, 2)}], 95% over test images`],
    ["ELBO (nats)", metrics.elbo === undefined ? "not recorded" : fmt(metrics.elbo, 2)],
    ["Jensen gap, test set mean (nats)", metrics.jensen_gap === undefined ? "not recorded" : fmt(metrics.jensen_gap, 2)],
    ["active units", describe(metrics.active_units)],
  ];
  document.getElementById("card").replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = describe(v);
    return [dt, dd];
  }));
  const promotion = document.getElementById("promotion");
  const decision = card.promotion;
  if (!decision) {
    promotion.textContent = "This model folder holds no promotion decision (it is an export, not a promoted champion).";
    return;
  }
  const previous = decision.previous_champion;
  const head = document.createElement("p");
  head.textContent = `${decision.challenger.model_version} was ${decision.promoted ? "promoted" : "not promoted"}; ` +
    (previous ? `it replaced ${previous.model_version} (test NLL ${fmt(previous.nll, 2)}).` : "there was no champion before it.");
  const reasons = document.createElement("ul");
  reasons.replaceChildren(...decision.reasons.map((r) => { const li = document.createElement("li"); li.textContent = r; return li; }));
  promotion.replaceChildren(head, reasons);
}

loadGallery().then(setupDrawing).catch((e) => { document.getElementById("gallery-note").textContent = e.message; });
loadCard().catch((e) => { document.getElementById("card").textContent = e.message; });
