/* The operator dashboard: reads the analytics JSON endpoints with an operator API key and draws Chart.js charts.
 *
 * The key is kept in this browser's localStorage ("voltway.operatorKey"). A link may carry it in the URL
 * fragment (/dashboard#key=vw_...), which never reaches the server: it is stored and removed from the address.
 * Each chart's canvas gets data-rendered="true" and data-points="N" once drawn (used by the browser test).
 */
(function () {
  "use strict";

  const KEY_STORAGE = "voltway.operatorKey";
  const COLORS = ["#0f9d74", "#2563eb", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2"];
  const ZONES = ["UTC", "Europe/London", "Europe/Paris", "Europe/Berlin", "Europe/Dublin", "America/New_York",
    "America/Chicago", "America/Los_Angeles", "America/Toronto", "Asia/Tokyo", "Asia/Dubai", "Asia/Kolkata",
    "Australia/Sydney", "Pacific/Auckland"];

  const form = document.getElementById("filters");
  const statusEl = document.getElementById("status");
  const charts = {};

  function setStatus(text, kind) {
    statusEl.textContent = text;
    statusEl.dataset.kind = kind || "info";
  }

  function storedKey() {
    const match = /(?:^#|&)key=([^&]+)/.exec(window.location.hash);
    if (match) {
      localStorage.setItem(KEY_STORAGE, decodeURIComponent(match[1]));
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    return localStorage.getItem(KEY_STORAGE) || "";
  }

  function fillZones() {
    const local = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    const zones = new Set([local, ...ZONES]);
    for (const zone of zones) {
      const option = new Option(zone === local ? zone + " (this browser)" : zone, zone);
      form.tz.add(option);
    }
    form.tz.value = local;
  }

  function params() {
    const query = new URLSearchParams({ days: form.days.value, tz: form.tz.value });
    if (form.operator.value.trim()) query.set("operator", form.operator.value.trim());
    if (form.country.value.trim()) query.set("country", form.country.value.trim().toUpperCase());
    return query;
  }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, extra) {
    const query = params();
    for (const [name, value] of Object.entries(extra || {})) {
      if (value === null) query.delete(name); else query.set(name, value);
    }
    const response = await fetch("/api/v1/analytics/" + path + "?" + query, {
      headers: { "X-API-Key": form.key.value.trim(), Accept: "application/json" },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const message = (body.error && body.error.message) || response.statusText;
      throw new ApiError(response.status, message);
    }
    return body;
  }

  const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

  function mainCurrency(revenue) {
    let best = null;
    for (const [currency, amount] of Object.entries(revenue || {})) {
      if (currency && (best === null || amount > revenue[best])) best = currency;
    }
    return best;
  }

  function money(amount, currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency, maximumFractionDigits: 0 }).format(amount);
    } catch (_error) {
      return number.format(amount) + " " + currency;
    }
  }

  function showChange(id, pct) {
    const el = document.getElementById(id);
    if (pct === null || pct === undefined) {
      el.textContent = "no previous data";
      el.dataset.trend = "flat";
      return;
    }
    el.textContent = (pct > 0 ? "▲ " : pct < 0 ? "▼ " : "") + number.format(Math.abs(pct)) + "% vs previous period";
    el.dataset.trend = pct > 0 ? "up" : pct < 0 ? "down" : "flat";
  }

  function kpis(trends) {
    const current = trends.current;
    const change = trends.change_pct;
    document.getElementById("kpi-sessions").textContent = number.format(current.sessions);
    document.getElementById("kpi-energy").textContent = number.format(current.energy_kwh) + " kWh";
    document.getElementById("kpi-drivers").textContent = number.format(current.unique_drivers);
    const currency = mainCurrency(current.revenue);
    document.getElementById("kpi-revenue").textContent = currency ? money(current.revenue[currency], currency) : "–";
    showChange("kpi-sessions-change", change.sessions);
    showChange("kpi-energy-change", change.energy_kwh);
    showChange("kpi-drivers-change", change.unique_drivers);
    showChange("kpi-revenue-change", currency ? change.revenue[currency] : null);
  }

  function draw(id, config, points) {
    if (charts[id]) charts[id].destroy();
    const canvas = document.getElementById(id);
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options);
    charts[id] = new window.Chart(canvas, config);
    canvas.dataset.rendered = "true";
    canvas.dataset.points = String(points);
  }

  function drawTrends(trends) {
    draw("chart-trends", {
      type: "line",
      data: {
        labels: trends.series.map((p) => p.start),
        datasets: [
          { label: "Sessions", data: trends.series.map((p) => p.sessions), borderColor: COLORS[0],
            backgroundColor: COLORS[0] + "33", fill: true, tension: 0.25, yAxisID: "y" },
          { label: "Energy (kWh)", data: trends.series.map((p) => p.energy_kwh), borderColor: COLORS[1],
            tension: 0.25, yAxisID: "y1" },
          { label: "Unique drivers", data: trends.series.map((p) => p.unique_drivers), borderColor: COLORS[2],
            tension: 0.25, yAxisID: "y" },
        ],
      },
      options: { interaction: { mode: "index", intersect: false },
        scales: { y: { beginAtZero: true }, y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } },
    }, trends.series.length);
  }

  function drawHours(hours) {
    draw("chart-hours", {
      data: {
        labels: hours.buckets.map((b) => String(b.hour).padStart(2, "0") + ":00"),
        datasets: [
          { type: "bar", label: "Sessions started", data: hours.buckets.map((b) => b.sessions),
            backgroundColor: COLORS[0], yAxisID: "y" },
          { type: "line", label: "Occupancy (%)", data: hours.buckets.map((b) => +(b.occupancy * 100).toFixed(2)),
            borderColor: COLORS[3], yAxisID: "y1", tension: 0.3 },
        ],
      },
      options: { scales: { y: { beginAtZero: true },
        y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } },
    }, hours.buckets.length);
  }

  function drawDays(days) {
    draw("chart-days", {
      type: "bar",
      data: {
        labels: days.buckets.map((b) => b.name.slice(0, 3)),
        datasets: [{ label: "Sessions started", data: days.buckets.map((b) => b.sessions), backgroundColor: COLORS[1] }],
      },
      options: { scales: { y: { beginAtZero: true } } },
    }, days.buckets.length);
  }

  function drawRevenue(revenue) {
    const days = [...new Set(revenue.rows.map((r) => r.key))].sort();
    const totals = Object.entries(revenue.totals).filter(([c]) => c).sort((a, b) => b[1] - a[1]).slice(0, 4);
    const datasets = totals.map(([currency], i) => {
      const byDay = new Map(revenue.rows.filter((r) => r.currency === currency).map((r) => [r.key, r.amount]));
      const color = COLORS[i % COLORS.length];
      return { label: currency, data: days.map((d) => byDay.get(d) || 0), borderColor: color,
        backgroundColor: color, tension: 0.25 };
    });
    // One line per currency: amounts in different currencies are never added up.
    draw("chart-revenue", {
      type: "line",
      data: { labels: days, datasets },
      options: { interaction: { mode: "index", intersect: false }, scales: { y: { beginAtZero: true } } },
    }, days.length);
  }

  function drawPopular(popular) {
    draw("chart-popular", {
      type: "bar",
      data: {
        labels: popular.items.map((i) => i.name.length > 28 ? i.name.slice(0, 27) + "…" : i.name),
        datasets: [{ label: "Sessions", data: popular.items.map((i) => i.sessions), backgroundColor: COLORS[4] }],
      },
      options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true } } },
    }, popular.items.length);
  }

  async function operators() {
    const list = document.getElementById("operators");
    if (list.childElementCount) return;
    const body = await api("revenue", { group_by: "operator", limit: 100, operator: null }).catch(() => null);
    for (const row of (body && body.rows) || []) {
      if (row.key && ![...list.options].some((o) => o.value === row.key)) list.append(new Option(row.key));
    }
  }

  async function refresh() {
    if (!form.key.value.trim()) {
      setStatus("Enter an operator API key (voltway keys create --role operator; `voltway serve --demo` prints one).",
        "error");
      return;
    }
    localStorage.setItem(KEY_STORAGE, form.key.value.trim());
    setStatus("Loading…");
    const started = performance.now();
    try {
      const [trends, hours, days, revenue, popular] = await Promise.all([
        api("trends", { interval: form.days.value > 90 ? "week" : "day" }),
        api("peak-hours"),
        api("peak-days"),
        api("revenue", { group_by: "day" }),
        api("popular", { limit: 10 }),
      ]);
      kpis(trends);
      drawTrends(trends);
      drawHours(hours);
      drawDays(days);
      drawRevenue(revenue);
      drawPopular(popular);
      const source = trends.window.source === "raw" ? "raw sessions" : "rollups";
      setStatus("Updated in " + Math.round(performance.now() - started) + " ms from " + source + ", " +
        trends.window.tz + ".", "ok");
      operators();
    } catch (error) {
      const hint = error.status === 401 ? " Check the API key." : error.status === 403 ? " This key is not an operator key." : "";
      setStatus("Could not load the analytics: " + error.message + "." + hint, "error");
    }
  }

  fillZones();
  form.key.value = storedKey();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  form.days.addEventListener("change", refresh);
  form.tz.addEventListener("change", refresh);
  refresh();
})();
