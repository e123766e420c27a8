// The registry page: models, their versions and metrics, and for one version its feature weights and
// predicted-vs-actual on its hold-out. Data comes from this API, under the page's own URL (so a stage
// prefix like /prod/ is kept); every value is written with textContent or as an SVG attribute, never as HTML.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const KEY_STORAGE = "lrnstak.api_key";
  const PREFERRED_METRICS = ["accuracy", "f1", "r2", "mse", "rmse", "mae"];

  // /prod and /prod/ both serve this page: API paths are resolved against the folder form.
  const BASE = new URL(location.href);
  BASE.search = "";
  BASE.hash = "";
  if (!BASE.pathname.endsWith("/")) BASE.pathname += "/";

  const $ = (id) => document.getElementById(id);
  const state = { model: null, versions: [], version: null, metric: null, nextToken: null, info: null };

  // --------------------------------------------------------------------------------------------- API

  class ApiError extends Error {}
  let keyPrompt = null;
  let memoryKey = storedKey();

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE);
    } catch {
      return null;
    }
  }

  function askForKey(refused) {
    if (keyPrompt) return keyPrompt;
    const form = $("key-form");
    $("key-reason").textContent = refused
      ? "The API refused that key: enter a valid one."
      : "This API wants a key.";
    form.hidden = false;
    $("key-input").value = "";
    $("key-input").focus();
    keyPrompt = new Promise((resolve) => {
      form.addEventListener(
        "submit",
        (event) => {
          event.preventDefault();
          const key = $("key-input").value.trim();
          try {
            sessionStorage.setItem(KEY_STORAGE, key);
          } catch {
            // storage disabled: the key lasts until the page is closed
          }
          memoryKey = key;
          form.hidden = true;
          keyPrompt = null;
          resolve();
        },
        { once: true },
      );
    });
    return keyPrompt;
  }

  async function api(path, params) {
    const url = new URL(path, BASE);
    for (const [name, value] of Object.entries(params || {})) url.searchParams.set(name, value);
    for (;;) {
      const headers = { Accept: "application/json" };
      const sentKey = memoryKey;
      if (sentKey) headers["x-api-key"] = sentKey;
      const response = await fetch(url, { headers, credentials: "same-origin", cache: "no-store" });
      if (response.status === 401 || response.status === 403) {
        setStatus("Waiting for an API key.");
        await askForKey(Boolean(sentKey) && sentKey === memoryKey);
        setStatus("");
        continue;
      }
      let body = null;
      try {
        body = await response.json();
      } catch {
        body = null;
      }
      if (!response.ok) {
        const message = body && body.error && typeof body.error.message === "string" ? body.error.message : "";
        throw new ApiError(`${response.status} from ${url.pathname}${message ? ": " + message : ""}`);
      }
      return { body, headers: response.headers };
    }
  }

  const segment = (value) => encodeURIComponent(String(value));

  // ------------------------------------------------------------------------------------------ helpers

  function setStatus(text, isError) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function svg(tag, attributes, parent, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (parent) parent.appendChild(node);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function isNumber(value) {
    return typeof value === "number" && Number.isFinite(value);
  }

  function formatNumber(value) {
    if (!isNumber(value)) return "–";
    if (value !== 0 && (Math.abs(value) >= 1e6 || Math.abs(value) < 1e-3)) return value.toExponential(3);
    return String(Number(value.toPrecision(4)));
  }

  function formatDate(text) {
    return typeof text === "string" ? text.replace("T", " ").replace(/\.\d+Z$/, "Z") : "";
  }

  function label(value) {
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function linkButton(text, onClick) {
    const button = element("button", text, "link");
    button.type = "button";
    button.addEventListener("click", onClick);
    return button;
  }

  function emptyChart(chart, width, height, message) {
    clear(chart);
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "message" }, chart, message);
  }

  function scale(domainMin, domainMax, rangeMin, rangeMax) {
    const span = domainMax - domainMin || 1;
    return (value) => rangeMin + ((value - domainMin) / span) * (rangeMax - rangeMin);
  }

  function paddedExtent(values) {
    let low = Math.min(...values);
    let high = Math.max(...values);
    if (low === high) {
      const pad = Math.abs(low) * 0.1 || 1;
      return [low - pad, high + pad];
    }
    const pad = (high - low) * 0.05;
    return [low - pad, high + pad];
  }

  function shorten(text, length) {
    return text.length > length ? text.slice(0, length - 1) + "…" : text;
  }

  // ------------------------------------------------------------------------------------------- models

  async function loadModels(more) {
    setStatus("Loading models…");
    const params = { limit: "100" };
    if (more && state.nextToken) params.next_token = state.nextToken;
    const { body, headers } = await api("models", params);
    state.nextToken = headers.get("X-Next-Token");
    const rows = $("models").tBodies[0];
    if (!more) clear(rows);
    for (const entry of Array.isArray(body) ? body : []) {
      const row = element("tr");
      row.dataset.model = String(entry.model);
      const name = element("td");
      name.appendChild(linkButton(entry.model, () => selectModel(String(entry.model)).catch(showError)));
      row.appendChild(name);
      row.appendChild(element("td", Array.isArray(entry.versions) ? entry.versions.length : 0, "number"));
      row.appendChild(element("td", entry.latest || "–"));
      row.appendChild(element("td", formatDate(entry.updated_at)));
      rows.appendChild(row);
    }
    $("models-empty").hidden = rows.rows.length > 0;
    $("more-models").hidden = !state.nextToken;
    setStatus("");
    return rows.rows.length;
  }

  function markSelected(tbody, attribute, value) {
    for (const row of tbody.rows) row.classList.toggle("selected", row.dataset[attribute] === value);
  }

  async function selectModel(model) {
    setStatus(`Loading ${model}…`);
    const { body } = await api(`models/${segment(model)}`);
    state.model = model;
    state.version = null;
    // Oldest first, for the chart; the table lists the newest first, as the API does.
    state.versions = (Array.isArray(body.versions) ? body.versions : []).slice().reverse();
    markSelected($("models").tBodies[0], "model", model);
    $("model-heading").textContent = `${model}: ${state.versions.length} version${state.versions.length === 1 ? "" : "s"}`;
    const metrics = metricNames(state.versions);
    renderVersions(metrics);
    const select = $("metric-select");
    clear(select);
    for (const name of metrics) select.appendChild(new Option(name, name));
    state.metric = metrics.includes(state.metric)
      ? state.metric
      : PREFERRED_METRICS.find((name) => metrics.includes(name)) || metrics[0] || null;
    if (state.metric) select.value = state.metric;
    renderMetricChart();
    $("model-section").hidden = false;
    $("version-section").hidden = true;
    setStatus("");
  }

  function metricNames(versions) {
    const names = new Set();
    for (const version of versions) {
      for (const [name, value] of Object.entries(version.metrics || {})) if (isNumber(value)) names.add(name);
    }
    return [...names].sort();
  }

  function renderVersions(metrics) {
    const head = $("versions-head");
    clear(head);
    for (const [index, title] of ["version", "created", "algorithm", ...metrics].entries()) {
      const cell = element("th", title, index >= 3 ? "number" : "");
      cell.scope = "col";
      head.appendChild(cell);
    }
    const rows = $("versions").tBodies[0];
    clear(rows);
    for (const version of state.versions.slice().reverse()) {
      const row = element("tr");
      row.dataset.version = String(version.version);
      const name = element("td");
      name.appendChild(linkButton(version.version, () => selectVersion(String(version.version)).catch(showError)));
      row.appendChild(name);
      row.appendChild(element("td", formatDate(version.created_at)));
      row.appendChild(element("td", version.algorithm || ""));
      for (const metric of metrics) row.appendChild(element("td", formatNumber((version.metrics || {})[metric]), "number"));
      rows.appendChild(row);
    }
  }

  // A line through one point per version (oldest to newest) of the chosen metric.
  function renderMetricChart() {
    const chart = $("metric-chart");
    const width = 760;
    const height = 260;
    const metric = state.metric;
    const points = state.versions
      .map((version, index) => ({ version: String(version.version), index, value: (version.metrics || {})[metric] }))
      .filter((point) => isNumber(point.value));
    $("metric-heading").textContent = metric ? `${metric} across versions` : "Metric across versions";
    if (!points.length) {
      emptyChart(chart, width, height, "No version of this model has metrics.");
      return;
    }
    clear(chart);
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const margin = { left: 64, right: 20, top: 16, bottom: 44 };
    const [low, high] = paddedExtent(points.map((point) => point.value));
    const x = scale(0, Math.max(state.versions.length - 1, 1), margin.left, width - margin.right);
    const xOf = (index) => (state.versions.length === 1 ? (margin.left + width - margin.right) / 2 : x(index));
    const y = scale(low, high, height - margin.bottom, margin.top);
    for (const tick of [low, (low + high) / 2, high]) {
      svg("line", { x1: margin.left, x2: width - margin.right, y1: y(tick), y2: y(tick), class: "grid" }, chart);
      svg("text", { x: margin.left - 6, y: y(tick) + 4, "text-anchor": "end", class: "tick" }, chart, formatNumber(tick));
    }
    svg("line", { x1: margin.left, x2: margin.left, y1: margin.top, y2: height - margin.bottom, class: "axis" }, chart);
    svg("line", { x1: margin.left, x2: width - margin.right, y1: height - margin.bottom, y2: height - margin.bottom, class: "axis" }, chart);
    const path = points.map((point, i) => `${i ? "L" : "M"}${xOf(point.index).toFixed(1)},${y(point.value).toFixed(1)}`);
    svg("path", { d: path.join(" "), class: "series" }, chart);
    const every = Math.ceil(state.versions.length / 12);
    state.versions.forEach((version, index) => {
      if (index % every === 0 || index === state.versions.length - 1) {
        const text = shorten(String(version.version), 14);
        svg("text", { x: xOf(index), y: height - margin.bottom + 16, "text-anchor": "middle", class: "tick" }, chart, text);
      }
    });
    svg("text", { x: (margin.left + width - margin.right) / 2, y: height - 6, "text-anchor": "middle", class: "muted" }, chart, "version (oldest → newest)");
    for (const point of points) {
      const dot = svg("circle", { cx: xOf(point.index), cy: y(point.value), r: 5, class: "point", "data-version": point.version }, chart);
      dot.classList.toggle("selected", point.version === state.version);
      svg("title", {}, dot, `${point.version}: ${metric} = ${formatNumber(point.value)}`);
      dot.addEventListener("click", () => selectVersion(point.version).catch(showError));
    }
  }

  // ----------------------------------------------------------------------------------------- version

  async function selectVersion(version) {
    setStatus(`Loading ${state.model} ${version}…`);
    const { body } = await api(`models/${segment(state.model)}/${segment(version)}/info`);
    state.version = version;
    state.info = body;
    markSelected($("versions").tBodies[0], "version", version);
    for (const dot of $("metric-chart").querySelectorAll(".point")) {
      dot.classList.toggle("selected", dot.getAttribute("data-version") === version);
    }
    $("version-heading").textContent = `${state.model} ${version} (${body.algorithm || "?"})`;
    renderExplanation(body.explanation);
    renderHoldout(body.holdout);
    $("version-section").hidden = false;
    setStatus("");
  }

  function renderExplanation(explanation) {
    const caption = $("explanation-caption");
    const picker = $("class-picker");
    const select = $("class-select");
    picker.hidden = true;
    const valid =
      explanation &&
      Array.isArray(explanation.features) &&
      Array.isArray(explanation.values) &&
      explanation.features.length > 0;
    if (!valid) {
      caption.textContent = "Feature weights";
      emptyChart($("explanation-chart"), 560, 120, "This estimator has no feature importances or coefficients.");
      return;
    }
    const title = explanation.kind === "importances" ? "Feature importances" : "Coefficients";
    const total = explanation.total_features;
    const shown = explanation.features.length;
    const suffix = isNumber(total) && total > shown ? ` (the ${shown} largest of ${total})` : "";
    const perClass = Array.isArray(explanation.values[0]);
    if (!perClass) {
      const positive = explanation.positive_class !== undefined ? `, towards class ${label(explanation.positive_class)}` : "";
      caption.textContent = `${title}${suffix}${positive}`;
      drawBars(explanation.features, explanation.values);
      return;
    }
    const classes = Array.isArray(explanation.classes) ? explanation.classes : [];
    clear(select);
    explanation.values.forEach((_, index) => select.appendChild(new Option(label(classes[index] ?? index), String(index))));
    picker.hidden = false;
    const draw = () => {
      const index = Number(select.value) || 0;
      caption.textContent = `${title}${suffix}, class ${label(classes[index] ?? index)}`;
      drawBars(explanation.features, explanation.values[index] || []);
    };
    select.onchange = draw;
    draw();
  }

  // Horizontal bars from a zero line, one per feature, largest magnitude first.
  function drawBars(features, values) {
    const chart = $("explanation-chart");
    clear(chart);
    const rowHeight = 20;
    const width = 560;
    const margin = { left: 170, right: 64, top: 10, bottom: 10 };
    const height = margin.top + margin.bottom + rowHeight * features.length;
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const numbers = values.map((value) => (isNumber(value) ? value : 0));
    const low = Math.min(0, ...numbers);
    const high = Math.max(0, ...numbers);
    // Room for the value written at the end of a negative bar, between it and the feature names.
    const valueRoom = low < 0 ? 56 : 0;
    const x = scale(low, high === low ? 1 : high, margin.left + valueRoom, width - margin.right);
    features.forEach((feature, index) => {
      const value = numbers[index];
      const top = margin.top + index * rowHeight;
      const name = String(feature);
      svg("text", { x: margin.left - 8, y: top + 14, "text-anchor": "end", class: "feature" }, chart, shorten(name, 26));
      const start = Math.min(x(0), x(value));
      const bar = svg(
        "rect",
        {
          x: start,
          y: top + 3,
          width: Math.max(Math.abs(x(value) - x(0)), 1),
          height: rowHeight - 6,
          class: value < 0 ? "bar negative" : "bar",
          "data-feature": name,
          "data-value": value,
        },
        chart,
      );
      svg("title", {}, bar, `${name}: ${formatNumber(value)}`);
      const after = value < 0 ? start - 4 : start + Math.abs(x(value) - x(0)) + 4;
      svg("text", { x: after, y: top + 14, "text-anchor": value < 0 ? "end" : "start", class: "tick" }, chart, formatNumber(value));
    });
    svg("line", { x1: x(0), x2: x(0), y1: margin.top, y2: height - margin.bottom, class: "axis" }, chart);
  }

  function renderHoldout(holdout) {
    const caption = $("holdout-caption");
    const chart = $("holdout-chart");
    if (holdout && holdout.kind === "regression" && Array.isArray(holdout.pairs) && holdout.pairs.length) {
      const sampled = holdout.sampled ? ` (${holdout.pairs.length} of ${holdout.rows} rows)` : ` (${holdout.pairs.length} rows)`;
      caption.textContent = `Predicted against actual on the hold-out${sampled}`;
      drawScatter(chart, holdout.pairs.filter((pair) => isNumber(pair.actual) && isNumber(pair.predicted)));
    } else if (holdout && holdout.kind === "classification" && Array.isArray(holdout.labels) && Array.isArray(holdout.matrix)) {
      caption.textContent = `Confusion matrix on the hold-out (${holdout.rows} rows)${holdout.truncated ? ", most frequent classes" : ""}`;
      drawConfusion(chart, holdout.labels, holdout.matrix);
    } else {
      caption.textContent = "Hold-out";
      emptyChart(chart, 560, 120, "Not recorded for this version (uploaded, or trained before it was).");
    }
  }

  function drawScatter(chart, pairs) {
    clear(chart);
    const size = 420;
    const margin = { left: 64, right: 16, top: 16, bottom: 44 };
    chart.setAttribute("viewBox", `0 0 ${size} ${size}`);
    const [low, high] = paddedExtent(pairs.flatMap((pair) => [pair.actual, pair.predicted]));
    const x = scale(low, high, margin.left, size - margin.right);
    const y = scale(low, high, size - margin.bottom, margin.top);
    for (const tick of [low, (low + high) / 2, high]) {
      svg("text", { x: x(tick), y: size - margin.bottom + 16, "text-anchor": "middle", class: "tick" }, chart, formatNumber(tick));
      svg("text", { x: margin.left - 6, y: y(tick) + 4, "text-anchor": "end", class: "tick" }, chart, formatNumber(tick));
    }
    svg("line", { x1: margin.left, x2: margin.left, y1: margin.top, y2: size - margin.bottom, class: "axis" }, chart);
    svg("line", { x1: margin.left, x2: size - margin.right, y1: size - margin.bottom, y2: size - margin.bottom, class: "axis" }, chart);
    svg("line", { x1: x(low), y1: y(low), x2: x(high), y2: y(high), class: "diagonal" }, chart);
    for (const pair of pairs) {
      const dot = svg("circle", { cx: x(pair.actual), cy: y(pair.predicted), r: 3, class: "pair" }, chart);
      svg("title", {}, dot, `actual ${formatNumber(pair.actual)}, predicted ${formatNumber(pair.predicted)}`);
    }
    svg("text", { x: (margin.left + size - margin.right) / 2, y: size - 6, "text-anchor": "middle", class: "muted" }, chart, "actual");
    svg("text", { x: 14, y: (margin.top + size - margin.bottom) / 2, "text-anchor": "middle", class: "muted", transform: `rotate(-90 14 ${(margin.top + size - margin.bottom) / 2})` }, chart, "predicted");
  }

  function drawConfusion(chart, labels, matrix) {
    clear(chart);
    const names = labels.map((value) => shorten(label(value), 16));
    const count = names.length;
    const cell = Math.max(14, Math.min(56, Math.floor(320 / Math.max(count, 1))));
    const longest = Math.max(...names.map((name) => name.length));
    // Column names that do not fit their cell are slanted.
    const slanted = longest * 6.5 > cell;
    const margin = { left: 24 + Math.min(longest, 16) * 6.5, top: slanted ? 30 + Math.min(longest, 16) * 5 : 44, right: 16, bottom: 16 };
    const width = Math.max(420, margin.left + cell * count + margin.right);
    const height = margin.top + cell * count + margin.bottom;
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const counts = matrix.flat().filter(isNumber);
    const most = Math.max(1, ...counts);
    svg("text", { x: margin.left + (cell * count) / 2, y: 14, "text-anchor": "middle", class: "muted" }, chart, "predicted");
    svg("text", { x: 8, y: 14, class: "muted" }, chart, "actual ↓");
    names.forEach((name, index) => {
      const centre = margin.left + cell * index + cell / 2;
      const attributes = slanted
        ? { x: centre, y: margin.top - 6, transform: `rotate(-40 ${centre} ${margin.top - 6})`, class: "tick" }
        : { x: centre, y: margin.top - 8, "text-anchor": "middle", class: "tick" };
      svg("text", attributes, chart, name);
      svg("text", { x: margin.left - 6, y: margin.top + cell * index + cell / 2 + 4, "text-anchor": "end", class: "tick" }, chart, name);
    });
    matrix.forEach((row, actual) => {
      (Array.isArray(row) ? row : []).forEach((value, predicted) => {
        const number = isNumber(value) ? value : 0;
        const level = number === 0 ? 0 : 1 + Math.min(4, Math.floor((number / most) * 4.999));
        const left = margin.left + cell * predicted;
        const top = margin.top + cell * actual;
        const rect = svg("rect", { x: left, y: top, width: cell, height: cell, class: `cell level-${level}`, "data-actual": actual, "data-predicted": predicted }, chart);
        svg("title", {}, rect, `actual ${label(labels[actual])}, predicted ${label(labels[predicted])}: ${number}`);
        if (cell >= 20) {
          svg("text", { x: left + cell / 2, y: top + cell / 2 + 4, "text-anchor": "middle", class: level >= 4 ? "count dark" : "count" }, chart, number);
        }
      });
    });
  }

  // ------------------------------------------------------------------------------------------- start

  function showError(error) {
    setStatus(error instanceof ApiError ? error.message : `Something went wrong: ${error && error.message}`, true);
  }

  $("metric-select").addEventListener("change", (event) => {
    state.metric = event.target.value;
    renderMetricChart();
  });
  $("more-models").addEventListener("click", () => loadModels(true).catch(showError));
  loadModels(false).catch(showError);
})();
