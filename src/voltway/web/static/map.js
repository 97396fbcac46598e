/* VoltWay driver map: clusters from /api/v1/stations/clusters as the map moves, station popups, filters,
   the stations nearest to the map centre, and live status over the /ws/stations WebSocket. */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("config").textContent);
  const API = "/api/v1/stations";
  const STATUS_LABELS = {
    available: "Available", occupied: "Occupied", out_of_service: "Out of service",
    planned: "Planned", removed: "Removed", unknown: "Unknown",
  };
  const FAST_KW = 50;

  // ------------------------------------------------------------------------------------- helpers
  function escapeHtml(value) {
    return String(value ?? "").replace(/[&<>"']/g, (c) => ({
      "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
    })[c]);
  }
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function formatPower(kw) {
    if (kw === null || kw === undefined) return "power unknown";
    return (kw >= 100 ? Math.round(kw) : Math.round(kw * 10) / 10) + " kW";
  }
  function formatCount(n) {
    return n >= 10000 ? Math.round(n / 1000) + "k" : n >= 1000 ? (n / 1000).toFixed(1) + "k" : String(n);
  }
  function statusBadge(status) {
    return `<span class="badge status-${escapeHtml(status)}">${escapeHtml(STATUS_LABELS[status] || status)}</span>`;
  }
  function formatPrice(station) {
    const p = station.price;
    if (p) {
      if (p.free) return "Free";
      const cur = p.currency ? " " + p.currency : "";
      const parts = [];
      if (p.per_kwh != null) parts.push(`${p.per_kwh}${cur}/kWh`);
      if (p.per_minute != null) parts.push(`${p.per_minute}${cur}/min`);
      if (p.per_session != null) parts.push(`${p.per_session}${cur}/session`);
      if (parts.length) return parts.join(" + ");
    }
    return station.usage_cost || "Price unknown";
  }
  function stars(average) {
    const full = Math.round(average);
    return "★".repeat(full) + "☆".repeat(5 - full);
  }
  async function getJson(url, signal) {
    const response = await fetch(url, { signal, headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${response.status} ${url}`);
    return response.json();
  }
  let noticeTimer = null;
  function notify(message, ms) {
    const box = document.getElementById("notice");
    box.textContent = message;
    box.hidden = false;
    clearTimeout(noticeTimer);
    if (ms) noticeTimer = setTimeout(() => { box.hidden = true; }, ms);
  }

  // ------------------------------------------------------------------------------------ the map
  const initial = parseHash();
  const map = L.map("map", {
    zoomControl: false,
    worldCopyJump: true,
    minZoom: 2,
    maxZoom: 19,
    attributionControl: false,
  }).setView(initial ? [initial.lat, initial.lon] : [50, 10], initial ? initial.zoom : 4);
  L.control.zoom({ position: "bottomright" }).addTo(map);
  L.control.attribution({ prefix: false, position: "bottomright" })
    .addAttribution("Station data © Open Charge Map contributors (CC BY 4.0)")
    .addTo(map);

  let tileFailures = 0;
  L.tileLayer(config.tileUrl, { attribution: config.tileAttribution, maxZoom: 19, crossOrigin: true })
    .on("tileerror", () => {
      tileFailures += 1;
      if (tileFailures === 3) notify("Map background unavailable — stations are still shown.", 6000);
    })
    .addTo(map);

  const markers = L.layerGroup().addTo(map);
  const stationMarkers = new Map(); // station id -> marker (only the points on screen)

  function parseHash() {
    const m = /^#(\d{1,2})\/(-?\d+(?:\.\d+)?)\/(-?\d+(?:\.\d+)?)$/.exec(location.hash);
    return m ? { zoom: +m[1], lat: +m[2], lon: +m[3] } : null;
  }
  function writeHash() {
    const c = map.getCenter();
    history.replaceState(null, "", `#${map.getZoom()}/${c.lat.toFixed(4)}/${c.wrap().lng.toFixed(4)}`);
  }

  /* The view as the API's bbox: longitudes wrapped into -180..180 (west > east crosses the antimeridian). */
  function viewBbox() {
    const b = map.getBounds();
    const south = Math.max(-90, b.getSouth()), north = Math.min(90, b.getNorth());
    let west = b.getWest(), east = b.getEast();
    if (east - west >= 360) { west = -180; east = 180; } else {
      west = L.Util.wrapNum(west, [-180, 180], true);
      east = L.Util.wrapNum(east, [-180, 180], true);
      if (east === -180) east = 180;
    }
    return [west, south, east, north].map((v) => +v.toFixed(6));
  }
  /* Padding that keeps framed stations clear of the panel (beside the map on wide screens). */
  function framePadding() {
    const panel = document.getElementById("panel");
    const beside = !panel.classList.contains("collapsed") && panel.offsetWidth < window.innerWidth / 2;
    return { paddingTopLeft: [beside ? panel.offsetWidth + 40 : 30, 30], paddingBottomRight: [30, 30] };
  }
  /* A longitude moved by whole turns next to the map centre, so markers show on the copy of the world in view. */
  function nearCentre(lon) {
    const centre = map.getCenter().lng;
    return lon + 360 * Math.round((centre - lon) / 360);
  }

  // -------------------------------------------------------------------------------- the filters
  const form = document.getElementById("filters");
  function filterParams() {
    const params = new URLSearchParams();
    const data = new FormData(form);
    if (data.get("connector")) params.set("connector", data.get("connector"));
    if (data.get("min_power_kw")) params.set("min_power_kw", data.get("min_power_kw"));
    if (data.get("available")) params.set("status", "available");
    return params;
  }
  form.addEventListener("change", () => refresh());

  // --------------------------------------------------------------------------- clusters & points
  function clusterIcon(props) {
    const size = Math.round(30 + Math.min(20, Math.log10(props.count) * 8));
    const html = `<div class="vw-cluster ${props.available > 0 ? "some-available" : "none-available"}"
      data-count="${props.count}" title="${props.count} stations, ${props.available} available">${formatCount(props.count)}</div>`;
    return L.divIcon({ html, className: "vw-marker", iconSize: [size, size] });
  }
  function stationIcon(props) {
    const fast = props.max_power_kw != null && props.max_power_kw >= FAST_KW ? " fast" : "";
    const html = `<div class="vw-station status-${escapeHtml(props.status)}${fast}" data-station-id="${props.id}"
      title="${escapeHtml(props.name)}"></div>`;
    return L.divIcon({ html, className: "vw-marker", iconSize: [22, 22], iconAnchor: [11, 22], popupAnchor: [0, -20] });
  }

  function showClusters(collection) {
    markers.clearLayers();
    stationMarkers.clear();
    for (const feature of collection.features) {
      const [lon, lat] = feature.geometry.coordinates;
      const props = feature.properties;
      const position = [lat, nearCentre(lon)];
      if (props.cluster) {
        L.marker(position, { icon: clusterIcon(props), riseOnHover: true, keyboard: true, title: `${props.count} stations` })
          .on("click", () => openCluster(props, position))
          .addTo(markers);
      } else {
        const marker = L.marker(position, { icon: stationIcon(props), riseOnHover: true, title: props.name })
          .bindPopup(() => popupShell(props), { maxWidth: 340, autoPanPadding: [40, 40] })
          .on("popupopen", () => fillStationPopup(props.id, marker))
          .addTo(markers);
        marker.stationProps = props;
        stationMarkers.set(props.id, marker);
      }
    }
    document.getElementById("map").dataset.features = String(collection.features.length);
  }

  function openCluster(props, position) {
    const [west, south, east, north] = props.bbox;
    const bounds = L.latLngBounds([south, nearCentre(west)], [north, nearCentre(east)]);
    const target = map.getBoundsZoom(bounds, false, L.point(60, 60));
    if (target > map.getZoom() && map.getZoom() < map.getMaxZoom()) {
      map.flyToBounds(bounds, { ...framePadding(), maxZoom: Math.min(map.getMaxZoom(), target), duration: 0.6 });
      return;
    }
    // Stations at (nearly) the same spot: list them instead of zooming further.
    const popup = L.popup({ maxWidth: 320 }).setLatLng(position)
      .setContent(`<div class="cluster-popup"><strong>${props.count} stations here</strong><p class="muted">Loading…</p></div>`)
      .openOn(map);
    const params = filterParams();
    params.set("bbox", `${west},${south},${east},${north}`);
    params.set("limit", "50");
    getJson(`${API}?${params}`).then((page) => {
      const box = el("div", "cluster-popup");
      box.append(el("strong", "", `${props.count} stations here`));
      const list = el("ol");
      for (const station of page.items) {
        const item = el("li");
        const button = el("button", "", station.name);
        button.type = "button";
        button.addEventListener("click", () => {
          popup.setContent(stationHtml(station));
        });
        item.append(button);
        list.append(item);
      }
      box.append(list);
      popup.setContent(box);
    }).catch(() => popup.setContent("Could not load these stations."));
  }

  let clustersRequest = null;
  async function loadClusters() {
    if (clustersRequest) clustersRequest.abort();
    clustersRequest = new AbortController();
    const params = filterParams();
    params.set("bbox", viewBbox().join(","));
    params.set("zoom", String(Math.max(0, Math.min(22, Math.round(map.getZoom())))));
    try {
      showClusters(await getJson(`${API}/clusters?${params}`, clustersRequest.signal));
    } catch (error) {
      if (error.name !== "AbortError") notify("Could not load stations. Retrying when the map moves.", 5000);
    }
  }

  // ------------------------------------------------------------------------------------ popups
  function popupShell(props) {
    return `<div class="station-popup"><h3>${escapeHtml(props.name)}</h3>
      <p class="operator">${escapeHtml(props.operator || "")}</p><p class="muted">Loading details…</p></div>`;
  }
  function stationHtml(s) {
    const address = [s.address, s.town, s.postcode, s.country].filter(Boolean).map(escapeHtml).join(", ");
    const rating = s.rating && s.rating.count
      ? `<span><span class="stars" aria-hidden="true">${stars(s.rating.average)}</span> ${s.rating.average.toFixed(1)} (${s.rating.count})</span>`
      : `<span class="muted">No reviews yet</span>`;
    const rows = s.connectors.map((c) => `<tr data-connector-id="${c.id}">
        <td>${escapeHtml(c.type_name || c.type)}${c.quantity > 1 ? ` ×${c.quantity}` : ""}</td>
        <td>${escapeHtml(formatPower(c.power_kw))}${c.current ? ` ${escapeHtml(c.current)}` : ""}</td>
        <td class="connector-status">${statusBadge(c.status)}</td></tr>`).join("");
    return `<div class="station-popup" data-station-id="${s.id}">
      <h3>${escapeHtml(s.name)}</h3>
      <p class="operator">${escapeHtml(s.operator || "Operator unknown")}</p>
      ${address ? `<p class="address">${address}</p>` : ""}
      <div class="facts"><span class="station-status">${statusBadge(s.status)}</span>
        <span>${escapeHtml(formatPrice(s))}</span>${rating}</div>
      ${rows ? `<table><thead><tr><th>Connector</th><th>Power</th><th>Status</th></tr></thead><tbody>${rows}</tbody></table>`
             : `<p class="muted">No connector details.</p>`}
    </div>`;
  }
  async function fillStationPopup(id, marker) {
    try {
      const station = await getJson(`${API}/${id}`);
      if (marker.isPopupOpen()) marker.setPopupContent(stationHtml(station));
    } catch (error) {
      if (marker.isPopupOpen()) marker.setPopupContent("Could not load this station.");
    }
  }

  // ----------------------------------------------------------------------------- nearest list
  let nearbyRequest = null;
  async function loadNearby() {
    if (nearbyRequest) nearbyRequest.abort();
    nearbyRequest = new AbortController();
    const centre = map.getCenter().wrap();
    const params = filterParams();
    params.set("lat", centre.lat.toFixed(5));
    params.set("lon", centre.lng.toFixed(5));
    params.set("k", "8");
    const status = document.getElementById("nearby-status");
    try {
      const page = await getJson(`${API}/nearest?${params}`, nearbyRequest.signal);
      const list = document.getElementById("nearby");
      list.replaceChildren(...page.items.map(nearbyItem));
      status.textContent = page.items.length ? "" : "No station matches these filters.";
      status.hidden = page.items.length > 0;
    } catch (error) {
      if (error.name !== "AbortError") { status.hidden = false; status.textContent = "Could not load nearby stations."; }
    }
  }
  function nearbyItem(station) {
    const item = el("li");
    const button = el("button");
    button.type = "button";
    button.dataset.stationId = station.id;
    const dot = el("span", `dot status-${station.status}`);
    dot.title = STATUS_LABELS[station.status] || station.status;
    const distance = station.distance_km < 1 ? `${Math.round(station.distance_km * 1000)} m`
      : `${station.distance_km < 10 ? station.distance_km.toFixed(1) : Math.round(station.distance_km)} km`;
    button.append(dot, el("span", "name", station.name), el("span", "distance", distance),
      el("span", "meta", [station.operator, formatPower(station.max_power_kw), station.town].filter(Boolean).join(" · ")));
    button.addEventListener("click", () => {
      map.setView([station.latitude, nearCentre(station.longitude)], Math.max(map.getZoom(), 15));
      L.popup({ maxWidth: 340 }).setLatLng([station.latitude, nearCentre(station.longitude)])
        .setContent(stationHtml(station)).openOn(map);
    });
    item.append(button);
    return item;
  }

  // ------------------------------------------------------------------------------------ moving
  let moveTimer = null;
  function refresh() {
    clearTimeout(moveTimer);
    moveTimer = setTimeout(() => {
      writeHash();
      loadClusters();
      loadNearby();
      live.subscribe(viewBbox());
    }, 150);
  }
  map.on("moveend", refresh);

  // -------------------------------------------------------------------------------- live status
  const live = (function () {
    const badge = document.getElementById("live");
    let socket = null, bbox = null, delay = 500;
    function setState(state, text) { badge.dataset.state = state; badge.querySelector(".live-text").textContent = text; }
    function send() {
      if (socket && socket.readyState === WebSocket.OPEN && bbox) {
        socket.send(JSON.stringify({ type: "subscribe", bbox: bbox.join(",") }));
      }
    }
    function connect() {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${location.host}/ws/stations`);
      socket.addEventListener("open", () => { delay = 500; setState("live", "live"); send(); });
      socket.addEventListener("message", (message) => {
        const event = JSON.parse(message.data);
        if (event.type === "status") applyStatus(event);
      });
      socket.addEventListener("close", () => {
        setState("offline", "offline");
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 15000);
      });
    }
    if ("WebSocket" in window) connect(); else setState("offline", "no live updates");
    return { subscribe(box) { bbox = box; send(); } };
  })();

  function applyStatus(event) {
    const marker = stationMarkers.get(event.station_id);
    if (marker && event.connector_id === null) {
      marker.stationProps.status = event.status;
      marker.setIcon(stationIcon(marker.stationProps));
      const node = marker.getElement() && marker.getElement().querySelector(".vw-station");
      if (node) node.classList.add("changed");
    }
    // An open popup of the station shows the change at once.
    for (const popup of document.querySelectorAll(`.station-popup[data-station-id="${event.station_id}"]`)) {
      const target = event.connector_id === null
        ? popup.querySelector(".station-status")
        : popup.querySelector(`tr[data-connector-id="${event.connector_id}"] .connector-status`);
      if (target) target.innerHTML = statusBadge(event.status);
    }
    for (const button of document.querySelectorAll(`#nearby button[data-station-id="${event.station_id}"]`)) {
      if (event.connector_id === null) button.querySelector(".dot").className = `dot status-${event.status}`;
    }
  }

  // ---------------------------------------------------------------------------------- the panel
  const panel = document.getElementById("panel");
  const toggle = document.getElementById("panel-toggle");
  toggle.addEventListener("click", () => {
    const collapsed = panel.classList.toggle("collapsed");
    toggle.setAttribute("aria-expanded", String(!collapsed));
  });
  if (window.matchMedia("(max-width: 640px)").matches) {
    panel.classList.add("collapsed");
    toggle.setAttribute("aria-expanded", "false");
  }

  // ------------------------------------------------------------------------------------- start
  if (initial) {
    refresh();
  } else {
    // First visit: frame where the stations are.
    getJson(`${API}/clusters?bbox=-180,-90,180,90&zoom=0`).then((world) => {
      const points = world.features.flatMap((f) => f.properties.cluster
        ? [[f.properties.bbox[1], f.properties.bbox[0]], [f.properties.bbox[3], f.properties.bbox[2]]]
        : [[f.geometry.coordinates[1], f.geometry.coordinates[0]]]);
      if (points.length) map.fitBounds(L.latLngBounds(points), { ...framePadding(), maxZoom: 12, animate: false });
      refresh();
    }).catch(() => refresh());
  }
})();
