// syncfanout console: a little plain JavaScript, no build step.
// Every URL is relative, so the console works under any path prefix.
"use strict";

(function () {
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  // Rooms list: optional reload every 5 s, remembered per browser.
  const auto = document.getElementById("autorefresh");
  if (auto) {
    const key = "syncfanout.autorefresh";
    auto.checked = localStorage.getItem(key) === "1";
    let timer = null;
    const arm = () => {
      clearInterval(timer);
      if (auto.checked) timer = setInterval(() => location.reload(), 5000);
    };
    auto.addEventListener("change", () => {
      localStorage.setItem(key, auto.checked ? "1" : "0");
      arm();
    });
    arm();
  }

  const state = document.getElementById("state");
  if (!state) return;
  const room = state.dataset.room;

  // The barrier is redrawn from the server (the same template) after each
  // event, and every 2 s for the ages.
  let pending = null;
  async function refresh() {
    pending = null;
    try {
      const res = await fetch("room?part=state&r=" + encodeURIComponent(room), { cache: "no-store" });
      if (res.ok) state.innerHTML = await res.text();
    } catch (e) { /* the next round will try again */ }
  }
  function soon() { if (!pending) pending = setTimeout(refresh, 150); }
  setInterval(refresh, 2000);

  // Live feed over server-sent events. The browser reconnects by itself
  // and sends the last event ID back: the server resumes right after it.
  const live = document.getElementById("live");
  const feed = document.getElementById("feed");
  // The zero policy's text form is empty (console/pages.go says the same).
  const policyZero = "the zero policy (lock-step)";
  function payloadNode(p) {
    const box = el("div");
    if (p.encoding === "msgpack") {
      box.append(el("pre", "payload json", p.json));
    } else if (p.encoding === "bytes") {
      if (p.text) box.append(el("pre", "payload text", p.text));
      const d = el("details", "raw");
      d.append(el("summary", "", (p.text ? "bytes" : "binary") + " · " + p.size + " B"));
      const dl = el("dl");
      dl.append(el("dt", "", "hex"), el("dd", "mono", p.hex || ""), el("dt", "", "base64"), el("dd", "mono", p.base64 || ""));
      d.append(dl);
      box.append(d);
    } else {
      box.append(el("span", "bad", "undecodable: " + (p.error || "")));
    }
    if (p.truncated) box.append(el("div", "cut", "showing the first part of " + p.size + " B"));
    return box;
  }
  function eventRow(ev) {
    const tr = el("tr", "ev fresh ev-" + ev.type);
    tr.dataset.id = ev.id;
    const t = new Date(ev.at);
    tr.append(el("td", "mono nowrap", t.toISOString().replace("T", " ").replace("Z", "")));
    const tc = el("td");
    tc.append(el("span", "tag t-" + ev.type, ev.type));
    tr.append(tc);
    tr.append(el("td", "mono", ev.id));
    const d = el("td");
    if (ev.message_id) d.append(el("b", "", "#" + ev.message_id), " ");
    if (ev.priority !== undefined && ev.priority !== null && ev.priority >= 0) d.append(el("span", "muted", "priority " + ev.priority), " ");
    if (ev.producer) d.append(el("span", "muted", "from " + ev.producer), " ");
    if (ev.client) d.append(el("span", "chip", ev.client));
    if (ev.observer) d.append(" ", el("span", "muted", "(observer)"));
    if (ev.reason) d.append(" ", el("span", "muted", "reason: " + ev.reason));
    if (ev.policy !== undefined && ev.policy !== null) d.append(" ", el("span", "muted", "set to"), " ", el("code", "policy", ev.policy || policyZero));
    if (ev.size && !ev.payload) d.append(" ", el("span", "muted", ev.size < 1024 ? ev.size + " B" : (ev.size / 1024).toFixed(1) + " KiB"));
    if (ev.enqueued) d.append(" ", el("span", "muted", "sent " + new Date(ev.enqueued).toISOString().replace("T", " ").replace("Z", "")));
    if (ev.count !== undefined && ev.count !== null) d.append(" ", el("span", "muted", "dropped " + ev.count));
    if (ev.missing && ev.missing.length) {
      d.append(" ", el("span", "muted", "without"));
      for (const m of ev.missing) d.append(" ", el("span", "chip miss", m));
    }
    if (ev.actor) d.append(" ", el("span", "muted", "by"), " ", el("span", "actor", ev.actor));
    if (ev.error) d.append(el("span", "bad", ev.error));
    if (ev.headers) {
      const dl = el("dl", "headers");
      for (const k of Object.keys(ev.headers).sort()) dl.append(el("dt", "", k), el("dd", "", ev.headers[k]));
      d.append(dl);
    }
    if (ev.payload) d.append(payloadNode(ev.payload));
    tr.append(d);
    return tr;
  }
  if (live && feed && window.EventSource) {
    const es = new EventSource(live.dataset.src);
    es.addEventListener("open", () => { live.textContent = "live"; live.className = "live on"; });
    es.addEventListener("error", () => { live.textContent = "reconnecting…"; live.className = "live off"; });
    es.addEventListener("problem", (m) => { live.textContent = "Redis: " + JSON.parse(m.data).error; live.className = "live off"; });
    es.addEventListener("message", (m) => {
      const ev = JSON.parse(m.data);
      const ph = feed.querySelector("tr.placeholder");
      if (ph) ph.remove();
      feed.prepend(eventRow(ev));
      while (feed.rows.length > 300) feed.deleteRow(feed.rows.length - 1);
      if (ev.type === "delete") { live.textContent = "room deleted"; }
      soon();
    });
  }

  // Admin actions: POST with the page's CSRF token, then redraw.
  const tokenMeta = document.querySelector('meta[name="csrf-token"]');
  const toast = document.getElementById("toast");
  function say(text, ok) {
    if (!toast) return;
    toast.textContent = text;
    toast.className = "toast " + (ok ? "ok" : "err");
  }
  document.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-action]");
    if (!b || !tokenMeta) return;
    e.preventDefault();
    if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) return;
    const action = b.dataset.action;
    const body = new URLSearchParams({ r: room });
    const reason = document.getElementById("reason");
    if (reason && reason.value) body.set("reason", reason.value);
    if (b.dataset.member) body.set("member", b.dataset.member);
    b.disabled = true;
    try {
      const res = await fetch("api/admin/" + action, {
        method: "POST",
        headers: { "X-CSRF-Token": tokenMeta.content },
        body: body,
        credentials: "same-origin",
      });
      const out = await res.json().catch(() => ({}));
      if (!res.ok) {
        say(action + " failed: " + (out.error || res.status), false);
      } else {
        let msg = action + " done";
        if (out.purged !== undefined) msg += ": " + out.purged + " dropped";
        if (out.released_without && out.released_without.length) msg += " without " + out.released_without.join(", ");
        say(msg, true);
        if (action === "delete") { location.href = "./"; return; }
      }
    } catch (err) {
      say(action + " failed: " + err, false);
    }
    b.disabled = false;
    refresh();
  });
})();
