// The sales-ops overview: asks for a key only if the service wants one, then draws GET /v1/dashboard.
// Every value from the server goes into the page as text (textContent), never as markup.
"use strict";

(() => {
  const KEY_STORAGE = "leadscore.apiKey";
  const DATA_URL = "v1/dashboard";
  const ACCESS_URL = "v1/dashboard/access";
  const SVG_PREFIX = "data:image/svg+xml;base64,";
  const QUESTIONS_SHOWN = 8;
  const $ = (id) => document.getElementById(id);

  function storedKey() {
    return sessionStorage.getItem(KEY_STORAGE);
  }

  function node(tag, className, text) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    if (text !== undefined && text !== null) element.textContent = String(text);
    return element;
  }

  function percent(value, digits = 0) {
    return value === null || value === undefined ? "–" : `${(value * 100).toFixed(digits)}%`;
  }

  function when(iso) {
    return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function message(text) {
    $("message").textContent = text;
    show("message", Boolean(text));
  }

  // ---------------------------------------------------------------- loading and the key

  function unreachable() {
    message("The scoring service cannot be reached. Check that it is running, then press Refresh.");
    show("refresh", true);
  }

  // Ask first whether a key is needed: a read that fails with 401 would be a needless error in the console.
  async function keyRequired() {
    const reply = await fetch(ACCESS_URL, { cache: "no-store" });
    return !reply.ok || (await reply.json()).key_required;
  }

  async function load() {
    const key = storedKey();
    const headers = key ? { "X-API-Key": key } : {};
    let reply;
    try {
      if (!key && (await keyRequired())) {
        askForKey("");
        return;
      }
      reply = await fetch(DATA_URL, { headers, cache: "no-store" });
    } catch (error) {
      unreachable();
      return;
    }
    if (reply.status === 401) {
      sessionStorage.removeItem(KEY_STORAGE);
      askForKey("That key was not accepted. Check it and try again.");
      return;
    }
    if (!reply.ok) {
      let detail = "";
      try {
        detail = (await reply.json()).detail || "";
      } catch (error) {
        detail = reply.statusText;
      }
      message(`The overview is not available right now (${reply.status}): ${detail}`);
      show("refresh", true);
      return;
    }
    render(await reply.json());
    show("forget-key", Boolean(key));
  }

  function askForKey(error) {
    show("content", false);
    show("refresh", false);
    show("overall", false);
    message("");
    $("model-line").textContent = "Sign in to see the champion model.";
    $("key-error").textContent = error;
    show("key-error", Boolean(error));
    show("key-panel", true);
    $("key-input").focus();
  }

  function submitKey(event) {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    $("key-input").value = "";
    show("key-panel", false);
    load();
  }

  function forgetKey() {
    sessionStorage.removeItem(KEY_STORAGE);
    show("forget-key", false);
    askForKey("");
  }

  // ---------------------------------------------------------------- drawing

  function render(data) {
    message("");
    show("key-panel", false);
    renderModel(data.model, data.health);
    renderCards(data.headline);
    renderHealth(data.health.items);
    renderGrades(data.grades);
    renderGradeMix(data.grade_mix);
    renderProfile(data.profile);
    renderCharts(data.charts);
    renderThresholds(data.thresholds);
    $("updated").textContent = `Updated ${when(new Date().toISOString())} · model loaded ${when(data.model.loaded_at)}`;
    show("content", true);
    show("refresh", true);
  }

  function renderModel(model, health) {
    const parts = [`Champion model ${model.version}`, `trained ${model.trained_on}`];
    if (model.dataset) parts.push(`${model.dataset} data`);
    $("model-line").textContent = parts.join(" · ");
    $("champion-notice").textContent = model.champion_notice ? `Not the champion yet: ${model.champion_notice}.` : "";
    show("champion-notice", Boolean(model.champion_notice));
    const overall = $("overall");
    overall.className = `pill ${health.overall}`;
    overall.textContent = health.overall_text;
    overall.hidden = false;
  }

  function renderCards(headline) {
    $("measured-on").textContent = headline.measured_on;
    const cards = $("cards");
    cards.replaceChildren();
    for (const card of headline.cards) {
      const box = node("article", "card");
      box.dataset.card = card.id;
      box.append(node("h3", "card-title", card.title));
      const value = node("p", "card-value", card.value);
      if (card.badge) value.append(node("span", "badge", card.badge));
      box.append(value, node("p", "card-note", card.note));
      cards.append(box);
    }
  }

  function renderHealth(items) {
    const grid = $("health");
    grid.replaceChildren();
    for (const item of items) {
      const box = node("article", `status ${item.colour}`);
      box.dataset.status = item.id;
      const head = node("div", "status-head");
      head.append(node("span", `dot ${item.colour}`), node("h3", null, item.title));
      head.append(node("span", `status-badge ${item.colour}`, item.colour === "grey" ? "waiting" : item.colour));
      box.append(head, node("p", "status-headline", item.headline), node("p", "status-detail", item.detail));
      grid.append(box);
    }
  }

  function renderGrades(grades) {
    const body = $("grades");
    body.replaceChildren();
    for (const row of grades) {
      const tr = node("tr");
      const grade = node("td");
      grade.append(node("span", `grade grade-${row.grade}`, row.grade));
      tr.append(grade, node("td", null, row.chance_range), node("td", null, percent(row.share_of_leads)));
      const expected = node("td");
      expected.append(node("strong", null, percent(row.expected_conversion, 1)), node("span", "sentence muted", row.sentence));
      tr.append(expected);
      body.append(tr);
    }
  }

  function renderGradeMix(mix) {
    const summary = $("mix-summary");
    const box = $("grade-mix");
    box.replaceChildren();
    if (mix.error) {
      summary.textContent = `The score log cannot be read right now: ${mix.error}`;
      return;
    }
    if (!mix.leads) {
      summary.textContent = "No leads have been scored yet. Once they are, their grades show up here.";
      return;
    }
    const span = mix.from ? ` scored ${when(mix.from)} – ${when(mix.to)}` : "";
    summary.textContent = `The last ${mix.leads.toLocaleString()} leads${span}.`;
    // the largest share fills the row, so small differences between grades stay visible
    const widest = Math.max(...mix.grades.map((row) => Math.max(row.share || 0, row.expected_share || 0)), 0.01);
    for (const row of mix.grades) {
      const line = node("div", "mix-row");
      line.dataset.grade = row.grade;
      line.append(node("span", `grade grade-${row.grade}`, row.grade));
      const bars = node("div", "mix-bars");
      const now = node("div", "bar now");
      now.style.width = percent((row.share || 0) / widest, 1);
      const expected = node("div", "bar expected");
      expected.style.width = percent((row.expected_share || 0) / widest, 1);
      bars.append(now, expected);
      const label = node("span", "mix-label");
      label.append(node("strong", null, percent(row.share)), node("span", null, ` · ${row.count.toLocaleString()} leads`));
      if (row.expected_share !== null && row.expected_share !== undefined) {
        label.append(node("span", "sentence", `expected ${percent(row.expected_share)}`));
      }
      line.append(bars, label);
      box.append(line);
    }
  }

  function renderProfile(profile) {
    $("profile-definition").textContent = profile.definition
      ? `Best customers here means the ${profile.definition} (${Number(profile.n_best).toLocaleString()} of ${Number(
          profile.n_all,
        ).toLocaleString()} leads). Ask new leads about these, most telling first:`
      : "";
    const list = $("questions");
    list.replaceChildren();
    if (!profile.questions.length) {
      list.append(node("li", "muted", "Nothing sets the best customers apart from other leads in this data."));
      return;
    }
    profile.questions.forEach((q, index) => {
      const item = node("li", "question");
      item.hidden = index >= QUESTIONS_SHOWN;
      item.dataset.field = q.field;
      const text = node("div", "question-text");
      text.append(node("p", "ask", q.question));
      text.append(node("p", "evidence", q.evidence));
      const shares = node("div", "share-bars");
      const best = node("div", "bar best");
      best.style.width = percent(q.share_best, 1);
      const all = node("div", "bar all");
      all.style.width = percent(q.share_all, 1);
      shares.append(best, all);
      item.append(node("span", "rank", q.rank), text, shares, node("span", "lift", `${q.lift.toFixed(1)}×`));
      list.append(item);
    });
    const more = $("more-questions");
    const hidden = profile.questions.length - QUESTIONS_SHOWN;
    more.textContent = `Show ${hidden} more`;
    more.hidden = hidden <= 0;
  }

  function showAllQuestions() {
    for (const item of $("questions").children) item.hidden = false;
    show("more-questions", false);
  }

  function renderCharts(charts) {
    const grid = $("charts");
    grid.replaceChildren();
    for (const chart of charts) {
      if (typeof chart.image !== "string" || !chart.image.startsWith(SVG_PREFIX)) continue;
      const figure = node("figure", "panel chart");
      figure.dataset.chart = chart.id;
      figure.append(node("h3", null, chart.title));
      const image = node("img");
      image.src = chart.image;
      image.alt = `${chart.title}. ${chart.caption}`;
      figure.append(image, node("figcaption", "muted", chart.caption));
      grid.append(figure);
    }
  }

  function renderThresholds(thresholds) {
    const list = $("thresholds");
    list.replaceChildren();
    for (const rule of thresholds) {
      list.append(node("dt", null, rule.title), node("dd", null, rule.text));
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("key-form").addEventListener("submit", submitKey);
    $("refresh").addEventListener("click", load);
    $("forget-key").addEventListener("click", forgetKey);
    $("more-questions").addEventListener("click", showAllQuestions);
    load();
  });
})();
