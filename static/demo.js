// herald demo: a plain WebSocket client of the herald.v1 protocol.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let ws = null, nextId = 1;
  const subs = new Set();
  $("url").value = `ws://${location.hostname || "localhost"}:8081/v1/ws`;

  function logFrame(cls, text) {
    const li = document.createElement("li");
    li.className = cls;
    li.textContent = `${new Date().toISOString().slice(11, 23)} ${cls === "out" ? "→" : "←"} ${text}`;
    $("log").prepend(li);
    while ($("log").children.length > 500) $("log").lastChild.remove();
  }
  function setState(s) { $("state").textContent = s; $("state").className = "state " + s; }
  function send(obj) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    obj.id = String(nextId++);
    const text = JSON.stringify(obj);
    logFrame("out", text);
    ws.send(text);
  }
  function renderSubs() {
    $("subs").innerHTML = "";
    for (const s of subs) {
      const li = document.createElement("li");
      li.textContent = s;
      const b = document.createElement("button");
      b.textContent = "unsubscribe";
      b.onclick = () => { send({ type: "unsubscribe", subject: s }); subs.delete(s); renderSubs(); };
      li.append(b);
      $("subs").append(li);
    }
  }
  $("btn-connect").onclick = () => {
    ws = new WebSocket($("url").value, "herald.v1");
    setState("connecting");
    ws.onopen = () => {
      setState("open");
      $("btn-connect").disabled = true; $("btn-disconnect").disabled = false;
      const t = $("token").value.trim();
      if (t) send({ type: "auth", token: t });
    };
    ws.onmessage = (e) => {
      let cls = "in";
      try { if (JSON.parse(e.data).type === "error") cls = "err"; } catch (_) { cls = "err"; }
      logFrame(cls, e.data);
    };
    ws.onclose = (e) => {
      setState("closed");
      logFrame("err", `closed ${e.code} ${e.reason}`);
      $("btn-connect").disabled = false; $("btn-disconnect").disabled = true;
      subs.clear(); renderSubs();
    };
  };
  $("btn-disconnect").onclick = () => ws && ws.close(1000);
  $("form-sub").onsubmit = (e) => {
    e.preventDefault();
    const s = $("sub-subject").value.trim();
    send({ type: "subscribe", subject: s });
    subs.add(s); renderSubs();
  };
  $("form-pub").onsubmit = (e) => {
    e.preventDefault();
    let data;
    try { data = JSON.parse($("pub-data").value); } catch (_) { data = $("pub-data").value; }
    send({ type: "publish", subject: $("pub-subject").value.trim(), data });
  };
})();
