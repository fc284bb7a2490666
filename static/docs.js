// herald docs: renders /openapi.json (OpenAPI 3.1) and /asyncapi.json
// (AsyncAPI 3.0) from herald itself. No third-party code or origin.
(function () {
  "use strict";

  // ---- DOM helpers ----------------------------------------------------------
  function h(tag, attrs) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (let i = 2; i < arguments.length; i++) add(e, arguments[i]);
    return e;
  }
  function add(parent, child) {
    if (child === undefined || child === null || child === false) return;
    if (Array.isArray(child)) child.forEach((c) => add(parent, c));
    else parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  const slug = (s) => String(s).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "root";
  const pretty = (v) => JSON.stringify(v, null, 2);

  // Minimal, safe Markdown: escape first, then headings, lists, tables,
  // paragraphs, `code`, **bold**. Enough for the documents' descriptions.
  function esc(s) {
    return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }
  function inline(s) {
    return esc(s).replace(/`([^`]+)`/g, "<code>$1</code>").replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>");
  }
  function markdown(text, headingLevel) {
    const div = h("div", { class: "md" });
    if (!text) return div;
    const lines = String(text).split("\n");
    let html = "", i = 0;
    while (i < lines.length) {
      const l = lines[i];
      if (!l.trim()) { i++; continue; }
      let m;
      if ((m = /^(#{1,6})\s+(.*)$/.exec(l))) {
        const lvl = Math.min(6, (headingLevel || 3) + m[1].length - 2);
        html += `<h${lvl}>${inline(m[2])}</h${lvl}>`; i++;
      } else if (/^\s*\|/.test(l)) {
        const rows = [];
        while (i < lines.length && /^\s*\|/.test(lines[i])) rows.push(lines[i++]);
        const cells = (r) => r.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
        html += "<table class=\"md-table\"><thead><tr>" + cells(rows[0]).map((c) => `<th>${inline(c)}</th>`).join("") + "</tr></thead><tbody>";
        for (const r of rows.slice(1)) {
          if (/^[\s|:-]+$/.test(r)) continue;
          html += "<tr>" + cells(r).map((c) => `<td>${inline(c)}</td>`).join("") + "</tr>";
        }
        html += "</tbody></table>";
      } else if (/^\s*(-|\*|\d+\.)\s+/.test(l)) {
        const ordered = /^\s*\d+\./.test(l);
        html += ordered ? "<ol>" : "<ul>";
        while (i < lines.length && /^\s*(-|\*|\d+\.)\s+/.test(lines[i]))
          html += `<li>${inline(lines[i++].replace(/^\s*(-|\*|\d+\.)\s+/, ""))}</li>`;
        html += ordered ? "</ol>" : "</ul>";
      } else {
        const para = [];
        while (i < lines.length && lines[i].trim() && !/^(#{1,6}\s|\s*\||\s*(-|\*|\d+\.)\s+)/.test(lines[i])) para.push(lines[i++]);
        html += `<p>${inline(para.join(" "))}</p>`;
      }
    }
    div.innerHTML = html;
    return div;
  }

  // ---- $ref resolution -------------------------------------------------------
  function pointer(doc, ref) {
    if (typeof ref !== "string" || !ref.startsWith("#")) return undefined;
    let cur = doc;
    for (const raw of ref.slice(1).split("/").slice(1)) {
      const key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
      if (cur === null || typeof cur !== "object" || !(key in cur)) return undefined;
      cur = cur[key];
    }
    return cur;
  }
  function deref(doc, obj, depth) {
    let d = 0;
    while (obj && typeof obj === "object" && typeof obj.$ref === "string" && d++ < (depth || 16)) {
      const target = pointer(doc, obj.$ref);
      if (target === undefined) return obj;
      obj = target;
    }
    return obj;
  }
  const refName = (ref) => ref.split("/").pop();

  // ---- schemas -----------------------------------------------------------------
  function typeLabel(doc, s) {
    if (s === true) return "any";
    if (s === false) return "never";
    if (!s || typeof s !== "object") return "";
    const parts = [];
    if (s.$ref) parts.push(refName(s.$ref));
    if ("const" in s) parts.push(JSON.stringify(s.const));
    else if (Array.isArray(s.type)) parts.push(s.type.join(" | "));
    else if (s.type === "array") {
      const it = s.items ? deref(doc, s.items) : null;
      parts.push("array of " + (s.items && s.items.$ref ? refName(s.items.$ref) : (typeLabel(doc, it) || "any")));
    } else if (s.type) parts.push(s.type);
    if (s.format) parts.push(`(${s.format})`);
    if (s.contentEncoding) parts.push(`(${s.contentEncoding})`);
    if (!parts.length) {
      if (s.oneOf) parts.push("one of");
      else if (s.anyOf) parts.push("any of");
      else if (s.allOf) parts.push("all of");
      else if (s.properties) parts.push("object");
      else parts.push("any");
    }
    return parts.join(" ");
  }
  function constraints(s) {
    const out = [];
    if (!s || typeof s !== "object") return out;
    const constList = Array.isArray(s.oneOf) && s.oneOf.every((v) => v && "const" in v);
    if (Array.isArray(s.enum) && !constList) out.push("one of: " + s.enum.map((v) => JSON.stringify(v)).join(", "));
    for (const [k, label] of [["minimum", "≥"], ["maximum", "≤"], ["minLength", "min length"],
                               ["maxLength", "max length"], ["minItems", "min items"], ["maxItems", "max items"],
                               ["pattern", "pattern"], ["default", "default"]])
      if (k in s) out.push(`${label} ${typeof s[k] === "string" && k !== "pattern" ? JSON.stringify(s[k]) : s[k]}`);
    if (Array.isArray(s.examples) && s.examples.length) out.push("e.g. " + s.examples.map((v) => JSON.stringify(v)).join(", "));
    return out;
  }

  // A schema as a compact nested property table, with the raw JSON behind a toggle.
  function schemaView(doc, schema, seen, collapsed) {
    const wrap = h("div", { class: "schema" });
    const body = schemaBody(doc, schema, seen || new Set(), 0);
    if (collapsed) wrap.append(h("details", { class: "shared" }, h("summary", {}, h("span", { class: "type", text: typeLabel(doc, schema) }), " (shared schema)"), body));
    else wrap.append(body);
    const raw = h("details", { class: "raw" }, h("summary", { text: "JSON Schema" }),
      h("pre", { class: "json", text: pretty(schema) }));
    wrap.append(raw);
    return wrap;
  }
  function schemaBody(doc, schema, seen, depth) {
    const box = h("div", { class: "schema-body" });
    if (schema && schema.$ref) {
      if (seen.has(schema.$ref) || depth > 8) {
        box.append(h("span", { class: "type", text: refName(schema.$ref) + " (recursive)" }));
        return box;
      }
      seen = new Set(seen).add(schema.$ref);
    }
    const s = deref(doc, schema);
    if (!s || typeof s !== "object") {
      box.append(h("span", { class: "type", text: typeLabel(doc, s) }));
      return box;
    }
    const head = h("div", { class: "schema-head" }, h("span", { class: "type", text: typeLabel(doc, schema.$ref ? schema : s) }));
    if (schema.$ref && s.type) head.append(" ", h("span", { class: "type muted", text: typeLabel(doc, s) }));
    for (const c of constraints(s)) head.append(" ", h("span", { class: "constraint", text: c }));
    box.append(head);
    if (s.description && depth === 0) box.append(markdown(s.description));
    if (s.properties) box.append(propTable(doc, s, seen, depth));
    if (s.type === "array" && s.items) {
      const it = deref(doc, s.items);
      if (it && (it.properties || it.oneOf || it.anyOf || it.allOf))
        box.append(h("div", { class: "sub" }, h("div", { class: "label", text: "items" }), schemaBody(doc, s.items, seen, depth + 1)));
    }
    for (const kw of ["oneOf", "anyOf", "allOf"]) {
      if (!Array.isArray(s[kw])) continue;
      const variants = s[kw].filter((v) => !(v && v.required && Object.keys(v).every((k) => ["required", "not"].includes(k))));
      const reqOnly = s[kw].length - variants.length;
      if (reqOnly) {
        box.append(h("div", { class: "note", text:
          kw.replace("Of", " of") + " these property sets: " +
          s[kw].map((v) => (v.required || []).join(" + ")).join(" | ") }));
      }
      if (!variants.length) continue;
      if (variants.every((v) => v && "const" in v)) {
        const ul = h("ul", { class: "variants" });
        for (const v of variants)
          ul.append(h("li", {}, h("code", { text: JSON.stringify(v.const) }), v.description ? " — " + v.description : ""));
        box.append(ul);
        continue;
      }
      const list = h("div", { class: "sub" }, h("div", { class: "label", text: kw.replace("Of", " of") }));
      for (const v of variants) list.append(schemaBody(doc, v, seen, depth + 1));
      box.append(list);
    }
    if (s.if && s.then) {
      const cond = [];
      for (const [k, v] of Object.entries(s.if.properties || {})) if (v && "const" in v) cond.push(`${k} = ${JSON.stringify(v.const)}`);
      if (s.then.required) box.append(h("div", { class: "note", text: `when ${cond.join(" and ") || "the condition holds"}: also requires ${s.then.required.join(", ")}` }));
    }
    return box;
  }
  function propTable(doc, s, seen, depth) {
    const req = new Set(s.required || []);
    const tbody = h("tbody");
    for (const [name, p0] of Object.entries(s.properties)) {
      const p = deref(doc, p0) || {};
      const desc = h("td", { class: "desc" });
      const d = p0 && p0.description ? p0.description : p.description;
      if (d) desc.append(markdown(d));
      for (const c of constraints(p)) desc.append(h("span", { class: "constraint", text: c }), " ");
      const nested = p && (p.properties || (p.type === "array" && p.items && deref(doc, p.items) && deref(doc, p.items).properties) ||
        (Array.isArray(p.oneOf) && !p.oneOf.every((v) => v && "const" in v)));
      if (nested && depth < 6) desc.append(schemaBody(doc, p0, seen, depth + 1));
      else if (Array.isArray(p.oneOf) && p.oneOf.every((v) => v && "const" in v)) {
        const ul = h("ul", { class: "variants" });
        for (const v of p.oneOf) ul.append(h("li", {}, h("code", { text: JSON.stringify(v.const) }), v.description ? " — " + v.description : ""));
        desc.append(ul);
      }
      tbody.append(h("tr", {},
        h("td", { class: "pname" }, h("code", { text: name }), req.has(name) ? h("span", { class: "req", title: "required", text: "required" }) : null),
        h("td", { class: "ptype", text: typeLabel(doc, p0 && p0.$ref ? p0 : p) }),
        desc));
    }
    return h("table", { class: "props" },
      h("thead", {}, h("tr", {}, h("th", { text: "property" }), h("th", { text: "type" }), h("th", { text: "description" }))),
      tbody);
  }

  // ---- navigation ----------------------------------------------------------------
  const nav = document.getElementById("nav-items");
  function navGroup(title, href) {
    const ul = h("ul");
    nav.append(h("div", { class: "nav-group" }, h("a", { class: "nav-title", href, text: title }), ul));
    return ul;
  }
  function navItem(ul, href, label, badge) {
    ul.append(h("li", {}, h("a", { href }, badge ? h("span", { class: "badge " + slug(badge), text: badge }) : null, label)));
  }

  // ---- OpenAPI -----------------------------------------------------------------
  const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

  function renderOpenAPI(doc) {
    const sec = h("section", { id: "http", class: "doc" });
    const info = doc.info || {};
    sec.append(h("h1", {}, info.title || "HTTP API", h("span", { class: "version", text: `OpenAPI ${doc.openapi} · v${info.version || "?"}` })));
    sec.append(markdown(info.description, 2));
    if (Array.isArray(doc.servers) && doc.servers.length)
      sec.append(h("p", { class: "servers" }, "Servers: ", doc.servers.map((s, i) => [i ? ", " : "", h("code", { text: s.url })])));
    const group = navGroup("HTTP API", "#http");
    for (const [path, item0] of Object.entries(doc.paths || {})) {
      const item = deref(doc, item0);
      for (const m of METHODS) {
        if (!item[m]) continue;
        const id = `op-${m}-${slug(path)}`;
        navItem(group, "#" + id, path, m.toUpperCase());
        sec.append(renderOperation(doc, path, m, item, item[m], id));
      }
    }
    return sec;
  }

  function renderOperation(doc, path, method, item, op, id) {
    const card = h("article", { class: "op", id });
    card.append(h("h2", { class: "op-title" }, h("span", { class: "badge " + method, text: method.toUpperCase() }), h("code", { class: "path", text: path }),
      op.summary ? h("span", { class: "summary", text: op.summary }) : null));
    if (op.tags) card.append(h("p", { class: "tags" }, op.tags.map((t) => h("span", { class: "tag", text: t }))));
    if (op.description) card.append(markdown(op.description));

    const params = [...(item.parameters || []), ...(op.parameters || [])].map((p) => deref(doc, p));
    if (params.length) {
      card.append(h("h3", { text: "Parameters" }));
      const tbody = h("tbody");
      for (const p of params)
        tbody.append(h("tr", {},
          h("td", { class: "pname" }, h("code", { text: p.name }), p.required ? h("span", { class: "req", text: "required" }) : null),
          h("td", { text: p.in }),
          h("td", { class: "ptype", text: p.schema ? typeLabel(doc, p.schema) : "" }),
          h("td", { class: "desc" }, p.description ? markdown(p.description) : null)));
      card.append(h("table", { class: "props" },
        h("thead", {}, h("tr", {}, ["name", "in", "type", "description"].map((t) => h("th", { text: t })))), tbody));
    }

    if (op.requestBody) {
      const rb = deref(doc, op.requestBody);
      card.append(h("h3", {}, "Request body", rb.required ? h("span", { class: "req", text: "required" }) : null));
      if (rb.description) card.append(markdown(rb.description));
      card.append(renderContent(doc, rb.content));
    }

    card.append(h("h3", { text: "Responses" }));
    const list = h("div", { class: "responses" });
    for (const [status, r0] of Object.entries(op.responses || {})) {
      const r = deref(doc, r0) || {};
      const cls = "status s" + String(status)[0];
      const row = h("div", { class: "response" },
        h("div", { class: "response-head" }, h("span", { class: cls, text: status }), h("span", { text: r.description || "" }),
          r0 && r0.$ref ? h("span", { class: "muted", text: " (" + refName(r0.$ref) + ")" }) : null));
      if (r.headers && Object.keys(r.headers).length) {
        const ul = h("ul", { class: "headers" });
        for (const [name, hd0] of Object.entries(r.headers)) {
          const hd = deref(doc, hd0);
          ul.append(h("li", {}, h("code", { text: name }), hd.description ? " — " + hd.description : ""));
        }
        row.append(h("div", { class: "label", text: "headers" }), ul);
      }
      if (r.content) row.append(renderContent(doc, r.content, !!(r0 && r0.$ref)));
      list.append(row);
    }
    card.append(list);
    return card;
  }

  function renderContent(doc, content, collapsed) {
    const box = h("div", { class: "content" });
    for (const [media, mt] of Object.entries(content || {})) {
      const block = h("div", { class: "media" }, h("div", { class: "media-type" }, h("code", { text: media })));
      if (mt && mt.schema) block.append(schemaView(doc, mt.schema, null, collapsed));
      if (mt && mt.example !== undefined) block.append(h("pre", { class: "json", text: pretty(mt.example) }));
      box.append(block);
    }
    return box;
  }

  // ---- AsyncAPI ------------------------------------------------------------------
  function renderAsyncAPI(doc) {
    const sec = h("section", { id: "ws", class: "doc" });
    const info = doc.info || {};
    sec.append(h("h1", {}, info.title || "WebSocket protocol", h("span", { class: "version", text: `AsyncAPI ${doc.asyncapi} · v${info.version || "?"}` })));
    const group = navGroup("WebSocket", "#ws");
    navItem(group, "#ws-overview", "Overview");
    sec.append(h("div", { id: "ws-overview" }, markdown(info.description, 2)));

    // Servers
    navItem(group, "#ws-servers", "Servers");
    const servers = h("div", { id: "ws-servers", class: "block" }, h("h2", { text: "Servers" }));
    for (const [name, s0] of Object.entries(doc.servers || {})) {
      const s = deref(doc, s0);
      const card = h("article", { class: "op", id: "server-" + slug(name) },
        h("h3", {}, h("span", { class: "badge " + slug(s.protocol || ""), text: s.protocol || "?" }),
          h("code", { class: "path", text: `${s.protocol}://${s.host}${s.pathname || ""}` }), h("span", { class: "summary", text: name })));
      if (s.summary) card.append(h("p", { text: s.summary }));
      if (s.description) card.append(markdown(s.description));
      if (Array.isArray(s.security) && s.security.length) {
        const ul = h("ul", { class: "headers" });
        for (const sc0 of s.security) {
          const sc = deref(doc, sc0) || {};
          const where = sc.type === "http" ? `HTTP ${sc.scheme}${sc.bearerFormat ? " (" + sc.bearerFormat + ")" : ""}` : `${sc.type} ${sc.in || ""} ${sc.name || ""}`;
          ul.append(h("li", {}, h("code", { text: sc0.$ref ? refName(sc0.$ref) : "scheme" }), ` — ${where.trim()}${sc.description ? ": " + sc.description : ""}`));
        }
        card.append(h("div", { class: "label", text: "security (alternatives)" }), ul);
      }
      servers.append(card);
    }
    sec.append(servers);

    // Channels
    navItem(group, "#ws-channels", "Channels");
    const channels = h("div", { id: "ws-channels", class: "block" }, h("h2", { text: "Channels" }));
    for (const [name, c0] of Object.entries(doc.channels || {})) {
      const c = deref(doc, c0);
      const card = h("article", { class: "op", id: "channel-" + slug(name) },
        h("h3", {}, h("code", { class: "path", text: c.address == null ? name : c.address }), c.title ? h("span", { class: "summary", text: c.title }) : null));
      if (c.summary) card.append(h("p", { text: c.summary }));
      if (c.description) card.append(markdown(c.description));
      const msgs = h("ul", { class: "msg-list" });
      for (const [mname, m0] of Object.entries(c.messages || {})) {
        const target = m0 && m0.$ref ? m0.$ref : `#/channels/${name}/messages/${mname}`;
        msgs.append(h("li", {}, h("a", { href: "#msg-" + slug(refName(target)) }, h("code", { text: mname }))));
      }
      card.append(h("div", { class: "label", text: "messages" }), msgs);
      if (c.bindings) {
        for (const [proto, b] of Object.entries(c.bindings)) {
          card.append(h("div", { class: "label", text: `${proto} binding` }));
          const bb = deref(doc, b) || {};
          if (bb.method) card.append(h("p", {}, "method ", h("code", { text: bb.method })));
          if (bb.headers) card.append(h("div", { class: "label", text: "upgrade request headers" }), schemaView(doc, bb.headers));
          if (bb.query) card.append(h("div", { class: "label", text: "query parameters" }), schemaView(doc, bb.query));
        }
      }
      channels.append(card);
    }
    sec.append(channels);

    // Operations
    const opsNav = navGroup("Operations", "#ws-operations");
    const ops = h("div", { id: "ws-operations", class: "block" }, h("h2", { text: "Operations" }));
    const msgLink = (ref) => {
      const m = deref(doc, { $ref: ref }) || {};
      const name = m.name || refName(ref);
      return h("a", { href: "#msg-" + slug(name) }, h("code", { text: name }));
    };
    for (const [name, o] of Object.entries(doc.operations || {})) {
      const id = "operation-" + slug(name);
      const direction = o.action === "receive" ? "client → herald" : "herald → client";
      navItem(opsNav, "#" + id, name, o.action);
      const card = h("article", { class: "op", id },
        h("h3", {}, h("span", { class: "badge " + slug(o.action), text: o.action }), h("code", { class: "path", text: name }),
          h("span", { class: "summary", text: o.title || "" })));
      card.append(h("p", { class: "muted", text: direction + (o.channel && o.channel.$ref ? " on channel " + refName(o.channel.$ref) : "") }));
      if (o.summary) card.append(h("p", { text: o.summary }));
      const lists = h("p", { class: "flow" }, "message: ", (o.messages || []).map((m, i) => [i ? ", " : "", msgLink(m.$ref)]));
      if (o.reply && o.reply.messages) add(lists, [" → reply: ", o.reply.messages.map((m, i) => [i ? " or " : "", msgLink(m.$ref)])]);
      card.append(lists);
      ops.append(card);
    }
    sec.append(ops);

    // Messages
    const msgNav = navGroup("Messages", "#ws-messages");
    const messages = h("div", { id: "ws-messages", class: "block" }, h("h2", { text: "Messages" }));
    const dirOf = {};
    for (const o of Object.values(doc.operations || {}))
      for (const m of o.messages || []) {
        const mm = deref(doc, m) || {};
        if (mm.name) dirOf[mm.name] = o.action === "receive" ? "client → server" : "server → client";
      }
    for (const [key, m0] of Object.entries((doc.components && doc.components.messages) || {})) {
      const m = deref(doc, m0);
      const name = m.name || key;
      const id = "msg-" + slug(name);
      navItem(msgNav, "#" + id, name, dirOf[name] === "client → server" ? "in" : "out");
      const card = h("article", { class: "op message", id },
        h("h3", {}, h("span", { class: "badge " + (dirOf[name] === "client → server" ? "in" : "out"), text: dirOf[name] || "message" }),
          h("code", { class: "path", text: name }), m.title ? h("span", { class: "summary", text: m.title }) : null));
      if (m.summary) card.append(h("p", { class: "lead", text: m.summary }));
      if (m.description) card.append(markdown(m.description));
      if (m.contentType) card.append(h("p", { class: "muted" }, "content type ", h("code", { text: m.contentType })));
      if (m.payload) card.append(h("div", { class: "label", text: "payload" }), schemaView(doc, m.payload));
      if (Array.isArray(m.examples) && m.examples.length) {
        card.append(h("div", { class: "label", text: "examples" }));
        for (const ex of m.examples)
          card.append(h("div", { class: "example" }, ex.name ? h("div", { class: "muted", text: ex.name }) : null,
            h("pre", { class: "json", text: JSON.stringify(ex.payload) })));
      }
      messages.append(card);
    }
    sec.append(messages);
    return sec;
  }

  // ---- load ------------------------------------------------------------------------
  async function load(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.json();
  }

  const status = document.getElementById("status");
  const content = document.getElementById("content");
  Promise.allSettled([load("/openapi.json"), load("/asyncapi.json")]).then(([oa, aa]) => {
    const problems = [];
    if (oa.status === "fulfilled") content.append(renderOpenAPI(oa.value));
    else problems.push(String(oa.reason && oa.reason.message || oa.reason));
    if (aa.status === "fulfilled") content.append(renderAsyncAPI(aa.value));
    else problems.push(String(aa.reason && aa.reason.message || aa.reason));
    if (problems.length) {
      status.textContent = "Could not load: " + problems.join("; ");
      status.className = "status error";
    } else {
      status.remove();
    }
    document.body.dataset.rendered = problems.length ? "partial" : "true";
    if (location.hash) {
      const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
      if (target) target.scrollIntoView();
    }
  });
})();
