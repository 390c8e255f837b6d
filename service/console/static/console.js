/* Rapport agent console.
 *
 * The page calls the public /v1 API with the agent's key (sessionStorage, bearer token).
 * Every value from the API reaches the DOM through textContent or a DOM attribute set with
 * setAttribute: never innerHTML. The page is served with script-src 'self' (no inline code).
 */
(function () {
  "use strict";

  var KEY_STORE = "rapport.console.key";
  var AGENT_STORE = "rapport.console.agent";
  var CHANNEL_STORE = "rapport.console.channel"; // localStorage: kept across reloads and tabs
  var PURCHASES_FOR_CHART = 100; // the API's page maximum
  var PURCHASES_SHOWN = 8;
  var CHART_MONTHS = 12;
  var MAX_NAME_LOOKUPS = 100; // product names for the purchases shown: one read (the API's cap)
  var PRODUCT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/; // others cannot be in the catalog

  var state = {
    key: null,
    session: null,
    customer: null, // the profile document on screen
    generation: 0, // bumps on every look-up; late answers of older ones are dropped
    lastLookup: null,
    clock: null,
  };

  // -- small DOM helpers ----------------------------------------------------------------------
  function $(id) {
    return document.getElementById(id);
  }

  /** el("li", {class: "x", "data-id": id}, "text", childNode): text children become text nodes. */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function svgEl(tag, attrs) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    setAttrs(node, attrs);
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function setAttrs(node, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      node.setAttribute(name, value === true ? "" : String(value));
    });
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) {
      child.forEach(function (c) { append(node, c); });
    } else if (typeof child === "object" && child.nodeType) {
      node.appendChild(child);
    } else {
      node.appendChild(document.createTextNode(String(child)));
    }
  }

  function setText(id, text) {
    $(id).textContent = text === null || text === undefined || text === "" ? "—" : String(text);
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function skeleton(lines) {
    var out = [];
    for (var i = 0; i < lines; i++) out.push(el("span", { class: "skeleton-line", "aria-hidden": "true" }));
    return out;
  }

  // -- formatting ----------------------------------------------------------------------------
  function money(amount, currency) {
    var n = Number(amount);
    if (!isFinite(n)) return String(amount);
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency: currency }).format(n);
    } catch (e) {
      return n.toFixed(2) + " " + (currency || "");
    }
  }

  function date(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return new Intl.DateTimeFormat(undefined, { dateStyle: "medium" }).format(d);
  }

  function daysAgo(days) {
    if (days === null || days === undefined || !isFinite(Number(days))) return "";
    days = Number(days);
    if (days === 0) return "today";
    if (days === 1) return "yesterday";
    return days + " days ago";
  }

  function localTime(timezone, locale) {
    if (!timezone) return "time zone unknown";
    try {
      var fmt = new Intl.DateTimeFormat(undefined, {
        timeZone: timezone, weekday: "short", hour: "2-digit", minute: "2-digit",
      });
      return fmt.format(new Date()) + " (" + timezone + ")";
    } catch (e) {
      return "unknown time zone " + timezone;
    }
  }

  function fullName(p) {
    var parts = [p.first_name, p.last_name].filter(Boolean);
    return p.display_name || parts.join(" ") || p.email || p.phone || p.id;
  }

  // -- the API -------------------------------------------------------------------------------
  function ApiError(status, problem, headers) {
    this.status = status;
    this.problem = problem || {};
    this.headers = headers;
    this.message = (problem && (problem.detail || problem.title)) || "HTTP " + status;
  }

  function api(path, options) {
    options = options || {};
    var headers = { Accept: "application/json", Authorization: "Bearer " + (options.key || state.key) };
    var init = { method: options.method || "GET", headers: headers, cache: "no-store", credentials: "omit" };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    return fetch(path, init).then(
      function (resp) {
        return resp.text().then(function (text) {
          var data = null;
          try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
          if (!resp.ok) throw new ApiError(resp.status, data, resp.headers);
          return { data: data, headers: resp.headers, status: resp.status };
        });
      },
      function () {
        throw new ApiError(0, { title: "No answer", detail: "The Rapport service did not answer." });
      }
    );
  }

  function unavailableText(err) {
    var retry = err.headers && err.headers.get("Retry-After");
    return "The profile store (Redis) is unavailable right now." +
      (retry ? " Try again in " + retry + " s." : " Try again shortly.");
  }

  /** A one-line message for an error in one panel; a 401 signs the agent out. */
  function panelError(err, what) {
    if (err.status === 401) { expired(); return "Signed out."; }
    if (err.status === 503) return "Unavailable: the profile store (Redis) did not answer.";
    if (err.status === 403) return "This key may not read " + what + " (" + (err.problem.required_scope || "scope missing") + ").";
    if (err.status === 404) return "Not available.";
    if (err.status === 0) return "The service did not answer.";
    return "Could not load " + what + ": " + err.message;
  }

  // -- sign-in -------------------------------------------------------------------------------
  function showSignIn(message) {
    state.key = null;
    state.session = null;
    show("app", false);
    show("who", false);
    show("signin", true);
    $("signin-error").textContent = message || "";
    $("api-key").value = "";
    $("agent-name").value = sessionStorage.getItem(AGENT_STORE) || "";
    $("api-key").focus();
  }

  function signInMessage(err) {
    if (err.status === 401) return "That API key was not accepted: check it and try again.";
    if (err.status === 503) return unavailableText(err);
    if (err.status === 0) return "The Rapport service did not answer.";
    return "Sign-in failed: " + err.message;
  }

  function trySession(key) {
    return api("/console/session", { key: key }).then(function (res) {
      var s = res.data;
      if (!s.can_read) {
        throw new ApiError(403, {
          detail: "This key lacks " + s.missing.join(" and ") + "; ask an admin for a console key.",
        });
      }
      return s;
    });
  }

  function onSignIn(event) {
    event.preventDefault();
    var key = $("api-key").value.trim();
    if (!key) {
      $("signin-error").textContent = "Enter an API key.";
      $("api-key").focus();
      return;
    }
    var button = $("signin-button");
    button.disabled = true;
    $("signin-error").textContent = "Checking the key…";
    trySession(key).then(
      function (session) {
        sessionStorage.setItem(KEY_STORE, key);
        var agent = $("agent-name").value.trim();
        if (agent) sessionStorage.setItem(AGENT_STORE, agent);
        else sessionStorage.removeItem(AGENT_STORE);
        button.disabled = false;
        startApp(key, session);
      },
      function (err) {
        button.disabled = false;
        $("signin-error").textContent = err.status === 403 ? err.message : signInMessage(err);
        $("api-key").focus();
        $("api-key").select();
      }
    );
  }

  function signOut() {
    sessionStorage.removeItem(KEY_STORE);
    stopClock();
    state.customer = null;
    state.generation++;
    if (location.pathname !== "/console") history.pushState(null, "", "/console");
    showSignIn("");
  }

  function expired() {
    sessionStorage.removeItem(KEY_STORE);
    stopClock();
    state.generation++;
    showSignIn("Your API key is no longer accepted; sign in again.");
  }

  function startApp(key, session) {
    state.key = key;
    state.session = session;
    show("signin", false);
    show("app", true);
    show("who", true);
    var agent = sessionStorage.getItem(AGENT_STORE);
    $("who-name").textContent = "Signed in: " + (agent ? agent + " · " : "") + "key " + session.name +
      (session.can_give_feedback ? "" : " (read only)");
    route(true);
    showExperiment(session);
  }

  // -- experiment (admin keys): acceptance per day, adaptive vs control ---------------------
  function showExperiment(session) {
    show("experiment", !!session.can_admin);
    if (!session.can_admin) return;
    $("experiment-summary").textContent = "Loading…";
    api("/v1/actions/performance").then(
      function (res) { drawExperiment(res.data); },
      function (err) { $("experiment-summary").textContent = "Could not load the experiment: " + err.message; }
    );
  }

  function drawExperiment(perf) {
    var days = perf.daily || [];
    var total = perf.total.groups;
    var pct = function (r) { return r === null || r === undefined ? "–" : (r * 100).toFixed(1) + "%"; };
    var summary = "Acceptance, " + perf.from + " to " + perf.to + ": adaptive " + pct(total.adaptive.acceptance_rate) +
      " (" + total.adaptive.shown + " shown), control " + pct(total.control.acceptance_rate) +
      " (" + total.control.shown + " shown); control share " + pct(perf.control_share) + ".";
    $("experiment-summary").textContent = summary;
    var W = 600, H = 200, left = 34, right = 8, top = 10, bottom = 22;
    var n = Math.max(1, days.length - 1);
    var x = function (i) { return left + (i * (W - left - right)) / n; };
    var y = function (r) { return H - bottom - r * (H - top - bottom); };
    var svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": summary,
      class: "chart-svg experiment-svg" });
    svg.appendChild(svgEl("line", { x1: left, x2: W - right, y1: y(0), y2: y(0), class: "axis" }));
    [0, 0.5, 1].forEach(function (r) {
      svg.appendChild(svgEl("text", { x: 2, y: (y(r) + 3).toFixed(1), class: "tick" }, (r * 100) + "%"));
    });
    ["adaptive", "control"].forEach(function (group) {
      var points = [];
      days.forEach(function (d, i) {
        var r = d[group].acceptance_rate;
        if (r !== null && r !== undefined) points.push(x(i).toFixed(1) + "," + y(r).toFixed(1));
      });
      if (points.length) {
        svg.appendChild(svgEl("polyline", { points: points.join(" "), class: "series series-" + group,
          "data-group": group }, svgEl("title", null, group)));
      }
    });
    if (days.length) {
      svg.appendChild(svgEl("text", { x: left, y: H - 6, class: "tick" }, days[0].day));
      svg.appendChild(svgEl("text", { x: W - right, y: H - 6, class: "tick", "text-anchor": "end" },
        days[days.length - 1].day));
    }
    var legend = el("p", { class: "small chart-caption" },
      el("span", { class: "legend legend-adaptive" }, "— adaptive"), " ",
      el("span", { class: "legend legend-control" }, "— control"));
    $("experiment-chart").replaceChildren(svg, legend);
  }

  // -- routing -------------------------------------------------------------------------------
  function customerFromPath() {
    var m = /^\/console\/customers\/([^/]+)\/?$/.exec(location.pathname);
    if (!m) return null;
    try { return decodeURIComponent(m[1]); } catch (e) { return null; }
  }

  function route(initial) {
    var id = customerFromPath();
    if (id) {
      $("lookup-kind").value = "id";
      $("lookup-value").value = id;
      lookup({ kind: "id", value: id }, { push: false });
    } else {
      state.generation++;
      state.customer = null;
      stopClock();
      show("customer", false);
      resetMessage();
      if (initial) $("lookup-value").focus();
    }
  }

  // -- look-up -------------------------------------------------------------------------------
  function guessKind(value) {
    if (value.indexOf("@") >= 0) return "email";
    if (/^\+?[0-9][0-9 ().\/-]{4,}$/.test(value)) return "phone";
    if (/^c_[A-Za-z0-9]+$/.test(value)) return "id";
    if (value.indexOf(":") > 0) return "external_id";
    return "id";
  }

  var KIND_LABEL = { email: "email", phone: "phone", external_id: "external id", id: "profile id" };

  function onLookup(event) {
    event.preventDefault();
    var value = $("lookup-value").value.trim();
    if (!value) {
      $("status").textContent = "Enter an email, phone, external id or profile id.";
      $("lookup-value").focus();
      return;
    }
    var kind = $("lookup-kind").value;
    if (kind === "auto") kind = guessKind(value);
    lookup({ kind: kind, value: value }, { push: true });
  }

  function lookup(query, opts) {
    var gen = ++state.generation;
    state.lastLookup = query;
    stopClock();
    setLoading();
    var path = query.kind === "id"
      ? "/v1/profiles/" + encodeURIComponent(query.value)
      : "/v1/profiles?" + new URLSearchParams([[query.kind, query.value]]).toString();
    api(path).then(
      function (res) {
        if (gen !== state.generation) return;
        var profile = res.data;
        var wanted = "/console/customers/" + encodeURIComponent(profile.id);
        if (opts.push && location.pathname !== wanted) history.pushState(null, "", wanted);
        else if (!opts.push && location.pathname !== wanted) history.replaceState(null, "", wanted);
        var merged = res.headers.get("Rapport-Merged-Into");
        showCustomer(profile, gen, merged && query.kind === "id" ? query.value : null);
      },
      function (err) {
        if (gen !== state.generation) return;
        lookupFailed(err, query);
      }
    );
  }

  function lookupFailed(err, query) {
    show("customer", false);
    $("status").textContent = "";
    if (err.status === 401) return expired();
    if (err.status === 404) {
      return showMessage("No customer found",
        "Nobody has the " + KIND_LABEL[query.kind] + " “" + query.value + "”. Check the spelling, " +
        "or try another identity (email, phone with country code, external id).", "notfound");
    }
    if (err.status === 503) return showMessage("Redis unavailable", unavailableText(err), "unavailable", true);
    if (err.status === 422 || err.status === 400) {
      var field = (err.problem.errors || []).map(function (e) { return e.message; }).join("; ");
      return showMessage("Not a valid " + KIND_LABEL[query.kind],
        "“" + query.value + "”: " + (field || err.message), "invalid");
    }
    if (err.status === 403) return showMessage("Not allowed", err.message, "error");
    if (err.status === 0) return showMessage("No answer", err.message, "unavailable", true);
    return showMessage("Something went wrong", err.message, "error", true);
  }

  var initialMessage = null;

  function resetMessage() {
    show("message", true);
    $("message").className = "message card";
    $("message-title").textContent = "Find a customer";
    $("message-body").replaceChildren.apply($("message-body"), initialMessage.map(function (n) { return n.cloneNode(true); }));
    show("message-retry", false);
  }

  function showMessage(title, body, kind, retry) {
    show("customer", false);
    show("message", true);
    $("message").className = "message card message-" + kind;
    $("message-title").textContent = title;
    $("message-body").textContent = body;
    show("message-retry", Boolean(retry));
    $("message-title").focus();
  }

  function setLoading() {
    show("message", false);
    show("customer", true);
    $("customer").setAttribute("aria-busy", "true");
    $("status").textContent = "Loading…";
    $("customer-name").replaceChildren(el("span", { class: "skeleton-line wide" }));
    $("customer-tier").textContent = "";
    $("customer-tier").className = "badge tier";
    ["customer-locale", "customer-time", "customer-country", "customer-id"].forEach(function (id) {
      $(id).replaceChildren(el("span", { class: "skeleton-line" }));
    });
    show("merged-note", false);
    show("pii-note", false);
    $("identities").replaceChildren(el("li", null, skeleton(2)));
    $("consent").replaceChildren(el("li", null, skeleton(1)));
    $("traits").replaceChildren(el("div", { class: "skeleton-block" }, skeleton(4)));
    $("chart").replaceChildren(el("div", { class: "skeleton-chart", "aria-hidden": "true" }));
    $("greeting").replaceChildren.apply($("greeting"), skeleton(2));
    $("greeting-meta").textContent = "";
    $("copy-greeting").disabled = true;
    $("copy-status").textContent = "";
    $("actions").replaceChildren(el("li", { class: "action skeleton-block" }, skeleton(3)));
    $("actions-status").textContent = "";
    show("actions-note", false);
    show("recs-label", false);
    $("recs").replaceChildren(el("li", { class: "skeleton-block" }, skeleton(3)));
    $("purchases").replaceChildren(el("div", { class: "skeleton-block" }, skeleton(4)));
  }

  // -- the customer screen -------------------------------------------------------------------
  function showCustomer(profile, gen, mergedFrom) {
    state.customer = profile;
    $("status").textContent = "Loaded " + fullName(profile) + ".";
    renderProfile(profile, mergedFrom);
    renderTraits(profile.traits || {});
    startClock(profile);
    $("customer-name").focus();
    var id = encodeURIComponent(profile.id);
    var channel = $("channel").value;
    var done = [
      loadGreeting(id, channel, gen),
      loadActions(id, channel, gen),
      loadRecommendations(id, gen),
      loadPurchases(id, gen),
    ];
    Promise.all(done).then(function () {
      if (gen === state.generation) $("customer").removeAttribute("aria-busy");
    });
  }

  function renderProfile(p, mergedFrom) {
    $("customer-name").textContent = fullName(p);
    var tier = p.loyalty_tier || "no tier";
    $("customer-tier").textContent = tier;
    $("customer-tier").className = "badge tier tier-" + (p.loyalty_tier || "none").replace(/[^a-z]/g, "");
    setText("customer-locale", p.locale);
    setText("customer-country", p.country);
    setText("customer-id", p.id);
    if (mergedFrom) {
      $("merged-note").textContent = "“" + mergedFrom + "” was merged into this profile.";
      show("merged-note", true);
    }
    var rows = [];
    (p.emails && p.emails.length ? p.emails : p.email ? [p.email] : []).forEach(function (v) {
      rows.push(identity("Email", v, v === p.email));
    });
    (p.phones && p.phones.length ? p.phones : p.phone ? [p.phone] : []).forEach(function (v) {
      rows.push(identity("Phone", v, v === p.phone));
    });
    (p.external_ids || []).forEach(function (v) { rows.push(identity("External", v, false)); });
    $("identities").replaceChildren.apply($("identities"), rows.length ? rows : [el("li", { class: "muted" }, "No identities")]);
    show("pii-note", !(state.session && state.session.can_see_pii) && Boolean(p.email || p.phone));
    var consent = p.consent || {};
    var purposes = ["marketing", "personalization", "profiling"];
    Object.keys(consent).forEach(function (k) { if (purposes.indexOf(k) < 0) purposes.push(k); });
    $("consent").replaceChildren.apply($("consent"), purposes.map(function (purpose) {
      var c = consent[purpose];
      var status = !c ? "unknown" : c.granted ? "granted" : "denied";
      var mark = status === "granted" ? "✓ " : status === "denied" ? "✗ " : "? ";
      var title = c && c.at ? purpose + ": " + status + " on " + date(c.at * 1000) + (c.source ? " (" + c.source + ")" : "") : purpose + ": " + status;
      return el("li", { class: "badge consent consent-" + status, title: title }, mark + purpose,
        el("span", { class: "visually-hidden" }, " " + status));
    }));
  }

  function identity(kind, value, primary) {
    // the marker sits in the value's line box: a narrow card wraps the line before it
    return el("li", null, el("span", { class: "id-kind" }, kind),
      el("span", { class: "id-value" }, el("span", { class: "mono" }, value),
        primary ? [" ", el("span", { class: "id-primary muted small" }, "primary")] : null));
  }

  function startClock(profile) {
    stopClock();
    var tick = function () { $("customer-time").textContent = localTime(profile.timezone); };
    tick();
    state.clock = setInterval(tick, 20000);
  }

  function stopClock() {
    if (state.clock) clearInterval(state.clock);
    state.clock = null;
  }

  function renderTraits(t) {
    var rows = [];
    function row(label, value, id) {
      rows.push(el("div", { "data-trait": id }, el("dt", null, label), el("dd", null, value)));
    }
    var orders = Number(t.order_count || 0);
    row("Orders", String(orders), "orders");
    var spend = t.total_spend || {};
    var currencies = Object.keys(spend);
    row("Total spend", currencies.length ? currencies.map(function (c) { return money(spend[c], c); }).join(" · ") : "—", "spend");
    var aov = t.average_order_value || {};
    if (Object.keys(aov).length) {
      row("Average order", Object.keys(aov).map(function (c) { return money(aov[c], c); }).join(" · "), "aov");
    }
    row("Last purchase", t.last_purchase_at ? date(t.last_purchase_at) + " · " + daysAgo(t.days_since_last_purchase) : "never", "last");
    if (t.favourite_categories && t.favourite_categories.length) {
      row("Favourite categories", t.favourite_categories.join(", "), "categories");
    }
    if (t.open_support_contacts) row("Open support contacts", String(t.open_support_contacts), "support");
    $("traits").replaceChildren.apply($("traits"), rows);
  }

  // greeting -----------------------------------------------------------------------------------
  function loadGreeting(id, channel, gen) {
    return api("/v1/profiles/" + id + "/greeting?channel=" + encodeURIComponent(channel)).then(
      function (res) {
        if (gen !== state.generation) return;
        var g = res.data;
        $("greeting").textContent = g.text;
        $("copy-greeting").disabled = !g.text;
        var template = g.template || {};
        $("greeting-meta").textContent = g.channel + " · " + g.locale +
          (template.origin ? " · " + template.origin + " template" : "");
      },
      function (err) {
        if (gen !== state.generation) return;
        $("greeting").replaceChildren(el("span", { class: "panel-error" }, panelError(err, "the greeting")));
        $("copy-greeting").disabled = true;
      }
    );
  }

  function copyGreeting() {
    var text = $("greeting").textContent;
    var done = function () { $("copy-status").textContent = "Copied."; };
    var fallback = function () {
      var area = el("textarea", { class: "visually-hidden", readonly: true });
      area.value = text;
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      area.remove();
      $("copy-status").textContent = ok ? "Copied." : "Select the text and copy it (Ctrl+C).";
      $("copy-greeting").focus();
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  }

  // next-best actions ------------------------------------------------------------------------
  var WITHHELD = { no_consent: "no consent", cooldown: "resting after an earlier offer", budget: "contact budget used", no_product: "no product to offer" };

  function loadActions(id, channel, gen) {
    var canWrite = state.session && state.session.can_give_feedback;
    if (!canWrite) {
      $("actions-note").textContent = "This key lacks actions:write: Accept and Dismiss are disabled.";
      show("actions-note", true);
    }
    return api("/v1/profiles/" + id + "/next-best-actions?limit=3&channel=" + encodeURIComponent(channel)).then(
      function (res) {
        if (gen !== state.generation) return;
        renderActions(res.data, canWrite);
      },
      function (err) {
        if (gen !== state.generation) return;
        $("actions").replaceChildren(el("li", { class: "panel-error" }, panelError(err, "next-best actions")));
      }
    );
  }

  function renderActions(data, canWrite) {
    var items = data.items || [];
    if (!items.length) {
      var withheld = (data.withheld || []).map(function (w) { return WITHHELD[w.reason] || w.reason; });
      $("actions").replaceChildren(el("li", { class: "muted empty-row" }, "No action to suggest right now" +
        (withheld.length ? " (" + withheld.length + " held back: " + unique(withheld).join(", ") + ")." : ".")));
      return;
    }
    $("actions").replaceChildren.apply($("actions"), items.map(function (a) {
      var reasons = (a.reasons || []).map(function (r) { return el("li", null, r); });
      var product = a.product ? el("p", { class: "small" }, "Product: ",
        el("strong", null, a.product.name || a.product.product_id),
        a.product.price ? " · " + (a.product.price_text || money(a.product.price, a.product.currency || "EUR")) : "") : null;
      var accept = el("button", { type: "button", class: "btn btn-accept", "data-outcome": "accepted", disabled: !canWrite },
        "Accept", el("span", { class: "visually-hidden" }, ": " + a.title));
      var dismiss = el("button", { type: "button", class: "btn btn-dismiss", "data-outcome": "dismissed", disabled: !canWrite },
        "Dismiss", el("span", { class: "visually-hidden" }, ": " + a.title));
      [accept, dismiss].forEach(function (b) {
        b.addEventListener("click", function () { sendFeedback(a, b.getAttribute("data-outcome"), li); });
      });
      var li = el("li", { class: "action", "data-action-id": a.action_id },
        el("div", { class: "action-head" },
          el("h3", null, a.title),
          el("span", { class: "score", title: "score = value × propensity" }, "score " + Number(a.score).toFixed(1))),
        a.say ? el("p", { class: "say" }, "“" + a.say + "”") : null,
        product,
        reasons.length ? el("ul", { class: "reasons", "aria-label": "Why" }, reasons) : null,
        el("div", { class: "action-buttons" }, accept, dismiss));
      return li;
    }));
  }

  function unique(list) {
    return list.filter(function (v, i) { return list.indexOf(v) === i; });
  }

  function feedbackId() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return "console-" + Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function sendFeedback(action, outcome, li) {
    var profile = state.customer;
    if (!profile) return;
    var gen = state.generation;
    var buttons = li.querySelectorAll("button");
    Array.prototype.forEach.call(buttons, function (b) { b.disabled = true; });
    li.setAttribute("aria-busy", "true");
    var channel = $("channel").value;
    var body = {
      feedback_id: feedbackId(),
      outcome: outcome,
      agent_id: sessionStorage.getItem(AGENT_STORE) || "console:" + state.session.name,
      channel: channel,
    };
    if (action.product && action.product.product_id) body.product_id = action.product.product_id;
    var id = encodeURIComponent(profile.id);
    api("/v1/profiles/" + id + "/next-best-actions/" + encodeURIComponent(action.action_id) + "/feedback",
      { method: "POST", body: body }).then(
      function () {
        if (gen !== state.generation) return;
        $("actions-status").textContent = (outcome === "accepted" ? "Accepted: " : "Dismissed: ") + action.title + ".";
        return loadActions(id, channel, gen).then(function () { $("actions-title").focus(); });
      },
      function (err) {
        if (gen !== state.generation) return;
        li.removeAttribute("aria-busy");
        Array.prototype.forEach.call(buttons, function (b) { b.disabled = false; });
        $("actions-status").textContent = "Feedback not saved: " + panelError(err, "feedback");
      }
    );
  }

  // recommendations --------------------------------------------------------------------------
  function loadRecommendations(id, gen) {
    return api("/v1/profiles/" + id + "/recommendations?limit=5").then(
      function (res) {
        if (gen !== state.generation) return;
        renderRecommendations(res.data);
      },
      function (err) {
        if (gen !== state.generation) return;
        $("recs").replaceChildren(el("li", { class: "panel-error" }, panelError(err, "recommendations")));
      }
    );
  }

  function renderRecommendations(data) {
    var popular = !data.model_version || data.basis === "popularity";
    var label = $("recs-label");
    label.textContent = popular ? "Popular items · no model trained yet" :
      "Model " + data.model_version + (data.basis === "cold" ? " · from the profile (new customer)" : "");
    label.className = "label-pill" + (popular ? " label-popular" : "");
    show("recs-label", true);
    var items = data.items || [];
    if (!items.length) {
      $("recs").replaceChildren(el("li", { class: "muted empty-row" }, "No products to recommend."));
      return;
    }
    $("recs").replaceChildren.apply($("recs"), items.map(function (item) {
      var meta = [item.category, item.in_stock === false ? "out of stock" : null].filter(Boolean).join(" · ");
      return el("li", { class: "rec", "data-product-id": item.product_id },
        el("div", { class: "rec-head" },
          el("span", { class: "rec-name" }, item.name || item.product_id),
          item.price ? el("span", { class: "rec-price" }, money(item.price, item.currency || "EUR")) : null),
        el("div", { class: "small" },
          item.reason ? el("span", { class: "reason" }, item.reason) : null,
          meta ? el("span", { class: "muted" }, (item.reason ? " · " : "") + meta) : null));
    }));
  }

  // purchases and the chart ------------------------------------------------------------------
  function loadPurchases(id, gen) {
    return api("/v1/profiles/" + id + "/purchases?limit=" + PURCHASES_FOR_CHART).then(
      function (res) {
        if (gen !== state.generation) return;
        var items = (res.data && res.data.items) || [];
        renderChart(items);
        return productNames(items.slice(0, PURCHASES_SHOWN)).then(function (names) {
          if (gen === state.generation) renderPurchases(items, names);
        });
      },
      function (err) {
        if (gen !== state.generation) return;
        var msg = panelError(err, "purchases");
        $("purchases").replaceChildren(el("p", { class: "panel-error" }, msg));
        $("chart").replaceChildren(el("p", { class: "panel-error" }, msg));
      }
    );
  }

  /** Catalog names of the products shown for these purchases ({id: name}), in one read
   * (GET /v1/products?ids=); unknown ids are left out, and a failed read leaves ids as they are. */
  function productNames(purchases) {
    var ids = [];
    purchases.forEach(function (p) {
      (p.lines || []).slice(0, 2).forEach(function (l) {
        if (PRODUCT_ID.test(l.product_id) && ids.indexOf(l.product_id) < 0) ids.push(l.product_id);
      });
    });
    ids = ids.slice(0, MAX_NAME_LOOKUPS);
    if (!ids.length) return Promise.resolve({});
    return api("/v1/products?" + new URLSearchParams([["ids", ids.join(",")]]).toString()).then(
      function (res) {
        var names = {};
        ((res.data && res.data.items) || []).forEach(function (p) { if (p.name) names[p.product_id] = p.name; });
        return names;
      },
      function () { return {}; });
  }

  function renderPurchases(items, names) {
    names = names || {};
    if (!items.length) {
      $("purchases").replaceChildren(el("p", { class: "muted empty-row" }, "No purchases yet."));
      return;
    }
    var rows = items.slice(0, PURCHASES_SHOWN).map(function (p) {
      var lines = (p.lines || []).map(function (l) { return l.quantity + " × " + (names[l.product_id] || l.product_id); });
      var shown = lines.slice(0, 2).join(", ") + (lines.length > 2 ? " +" + (lines.length - 2) + " more" : "");
      return el("tr", null,
        el("td", null, date(p.purchased_at)),
        el("td", null, el("div", { class: "mono small" }, p.order_id), el("div", { class: "small muted" }, shown)),
        el("td", { class: "num" }, money(p.total, p.currency)));
    });
    var table = el("table", { class: "table" },
      el("caption", { class: "visually-hidden" }, "Last purchases, newest first"),
      el("thead", null, el("tr", null, el("th", { scope: "col" }, "Date"), el("th", { scope: "col" }, "Order"),
        el("th", { scope: "col", class: "num" }, "Total"))),
      el("tbody", null, rows));
    var more = items.length > PURCHASES_SHOWN ? el("p", { class: "small muted" },
      "Showing " + PURCHASES_SHOWN + " of " + (items.length >= PURCHASES_FOR_CHART ? PURCHASES_FOR_CHART + "+" : items.length) + ".") : null;
    $("purchases").replaceChildren(table, more || "");
  }

  /** Monthly spend in the customer's main currency over the 12 months up to their latest purchase. */
  function renderChart(items) {
    var box = $("chart");
    if (!items.length) {
      box.replaceChildren(el("p", { class: "muted empty-row" }, "No purchases to chart."));
      return;
    }
    var byCurrency = {};
    items.forEach(function (p) { byCurrency[p.currency] = (byCurrency[p.currency] || 0) + Number(p.total || 0); });
    var currency = Object.keys(byCurrency).sort(function (a, b) { return byCurrency[b] - byCurrency[a]; })[0];
    var latest = new Date(items[0].purchased_at);
    items.forEach(function (p) { var d = new Date(p.purchased_at); if (d > latest) latest = d; });
    var months = [];
    for (var i = CHART_MONTHS - 1; i >= 0; i--) {
      var d = new Date(Date.UTC(latest.getUTCFullYear(), latest.getUTCMonth() - i, 1));
      months.push({ key: d.getUTCFullYear() + "-" + d.getUTCMonth(), date: d, total: 0 });
    }
    var index = {};
    months.forEach(function (m, i) { index[m.key] = i; });
    items.forEach(function (p) {
      if (p.currency !== currency) return;
      var d = new Date(p.purchased_at);
      var k = d.getUTCFullYear() + "-" + d.getUTCMonth();
      if (k in index) months[index[k]].total += Number(p.total || 0);
    });
    var max = Math.max.apply(null, months.map(function (m) { return m.total; })) || 1;
    var W = 360, H = 150, left = 8, right = 8, top = 18, bottom = 22;
    var slot = (W - left - right) / months.length;
    var barW = Math.max(4, slot * 0.68);
    var monthFmt = new Intl.DateTimeFormat(undefined, { month: "narrow", timeZone: "UTC" });
    var longFmt = new Intl.DateTimeFormat(undefined, { month: "long", year: "numeric", timeZone: "UTC" });
    var total = months.reduce(function (s, m) { return s + m.total; }, 0);
    var summary = "Spend per month in " + currency + ", " + longFmt.format(months[0].date) + " to " +
      longFmt.format(months[months.length - 1].date) + ": " + money(total, currency) + " in all.";
    var svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": summary, class: "chart-svg",
      preserveAspectRatio: "xMidYMid meet" });
    svg.appendChild(svgEl("line", { x1: left, x2: W - right, y1: H - bottom, y2: H - bottom, class: "axis" }));
    months.forEach(function (m, i) {
      var h = m.total > 0 ? Math.max(2, (H - top - bottom) * (m.total / max)) : 0;
      var x = left + i * slot + (slot - barW) / 2;
      var bar = svgEl("rect", { x: x.toFixed(1), y: (H - bottom - h).toFixed(1), width: barW.toFixed(1), height: h.toFixed(1),
        rx: 2, class: "bar" + (m.total === max && m.total > 0 ? " bar-max" : "") },
        svgEl("title", null, longFmt.format(m.date) + ": " + money(m.total, currency)));
      svg.appendChild(bar);
      svg.appendChild(svgEl("text", { x: (left + i * slot + slot / 2).toFixed(1), y: H - 6, class: "tick", "text-anchor": "middle" },
        monthFmt.format(m.date)));
    });
    svg.appendChild(svgEl("text", { x: left, y: 12, class: "tick" }, "max " + money(max, currency) + " / month"));
    box.replaceChildren(svg, el("p", { class: "small muted chart-caption" }, summary));
  }

  // -- the channel choice, kept in localStorage (storage may be off: then it is not kept) ------
  function keepChannel(value) {
    try { localStorage.setItem(CHANNEL_STORE, value); } catch (e) { /* not kept */ }
  }

  /** The stored channel if the select offers it; anything else is dropped (default stays). */
  function restoreChannel() {
    var stored = null;
    try { stored = localStorage.getItem(CHANNEL_STORE); } catch (e) { return; }
    if (stored === null) return;
    var select = $("channel");
    var offered = Array.prototype.some.call(select.options, function (o) { return o.value === stored; });
    if (offered) select.value = stored;
    else try { localStorage.removeItem(CHANNEL_STORE); } catch (e) { /* ignored */ }
  }

  // -- wiring --------------------------------------------------------------------------------
  function init() {
    initialMessage = Array.prototype.slice.call($("message-body").childNodes).map(function (n) { return n.cloneNode(true); });
    $("signin-form").addEventListener("submit", onSignIn);
    $("sign-out").addEventListener("click", signOut);
    $("lookup-form").addEventListener("submit", onLookup);
    $("copy-greeting").addEventListener("click", copyGreeting);
    $("message-retry").addEventListener("click", function () {
      if (state.lastLookup) lookup(state.lastLookup, { push: false });
    });
    restoreChannel();
    $("channel").addEventListener("change", function () {
      keepChannel($("channel").value);
      if (state.customer) {
        var gen = state.generation;
        var id = encodeURIComponent(state.customer.id);
        loadGreeting(id, $("channel").value, gen);
        loadActions(id, $("channel").value, gen);
      }
    });
    window.addEventListener("popstate", function () { if (state.key) route(false); });
    document.addEventListener("keydown", function (e) {
      var tag = (e.target && e.target.tagName) || "";
      if (e.key === "/" && !/^(INPUT|TEXTAREA|SELECT)$/.test(tag) && state.key) {
        e.preventDefault();
        $("lookup-value").focus();
        $("lookup-value").select();
      }
    });

    var key = sessionStorage.getItem(KEY_STORE);
    if (!key) return showSignIn("");
    $("signin-error").textContent = "";
    trySession(key).then(
      function (session) { startApp(key, session); },
      function (err) {
        if (err.status === 401 || err.status === 403) {
          sessionStorage.removeItem(KEY_STORE);
          return showSignIn(err.status === 401 ? "Your API key is no longer accepted; sign in again." : err.message);
        }
        showSignIn(signInMessage(err));
        $("api-key").value = key;
      }
    );
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
