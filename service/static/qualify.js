// The qualification page: enter what is known, then answer the suggested questions one at a time.
// Reads GET /v1/model/answers once and POST /v1/leads/next-question after every answer.
// Every value from the server goes into the page as text (textContent), never as markup.
"use strict";

(() => {
  const KEY_STORAGE = "leadscore.apiKey"; // the sales-ops page's key: one sign-in per tab serves both
  const ACCESS_URL = "v1/dashboard/access";
  const ANSWERS_URL = "v1/model/answers";
  const NEXT_URL = "v1/leads/next-question";
  const $ = (id) => document.getElementById(id);
  const known = {}; // field -> value as the lead would send it
  const skipped = new Set();
  let table = null; // field -> {question, name, answers}

  function node(tag, className, text) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    if (text !== undefined && text !== null) element.textContent = String(text);
    return element;
  }

  function percent(value) {
    return `${Math.round(value * 100)}%`;
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function message(text) {
    $("message").textContent = text;
    show("message", Boolean(text));
  }

  // ---------------------------------------------------------------- the key, as on the sales-ops page

  async function keyRequired() {
    const reply = await fetch(ACCESS_URL, { cache: "no-store" });
    return !reply.ok || (await reply.json()).key_required;
  }

  class SignIn extends Error {}

  async function call(url, body) {
    const key = sessionStorage.getItem(KEY_STORAGE);
    const headers = key ? { "X-API-Key": key } : {};
    const options = { headers, cache: "no-store" };
    if (body !== undefined) {
      options.method = "POST";
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const reply = await fetch(url, options);
    if (reply.status === 401) {
      sessionStorage.removeItem(KEY_STORAGE);
      throw new SignIn("That key was not accepted. Check it and try again.");
    }
    const data = await reply.json();
    if (!reply.ok) {
      const detail = Array.isArray(data.detail) ? data.detail.map((d) => `${d.field}: ${d.msg}`).join("; ") : data.detail;
      throw new Error(`${reply.status}: ${detail}`);
    }
    return data;
  }

  function askForKey(error) {
    show("content", false);
    show("start-over", false);
    message("");
    $("model-line").textContent = "Sign in to qualify leads with the champion model.";
    $("key-error").textContent = error;
    show("key-error", Boolean(error));
    show("key-panel", true);
    $("key-input").focus();
  }

  async function load() {
    try {
      if (!sessionStorage.getItem(KEY_STORAGE) && (await keyRequired())) {
        askForKey("");
        return;
      }
      const data = await call(ANSWERS_URL);
      table = Object.fromEntries(data.fields.map((field) => [field.field, field]));
      $("model-line").textContent = `Champion model ${data.model_version} · best customers: ${data.best_customers}`;
      fillKnownForm();
      show("key-panel", false);
      show("content", true);
      show("start-over", true);
      show("forget-key", Boolean(sessionStorage.getItem(KEY_STORAGE)));
      await refresh();
    } catch (error) {
      failed(error);
    }
  }

  function failed(error) {
    if (error instanceof SignIn) askForKey(error.message);
    else if (error instanceof TypeError) message("The scoring service cannot be reached. Check that it is running.");
    else message(`Not available right now (${error.message}).`);
  }

  // ---------------------------------------------------------------- what is known

  function fillKnownForm() {
    const fields = $("known-field");
    fields.replaceChildren();
    for (const field of Object.values(table)) {
      if (field.field in known) continue;
      const option = node("option", null, field.name);
      option.value = field.field;
      fields.append(option);
    }
    fillKnownValues();
  }

  function fillKnownValues() {
    const values = $("known-value");
    values.replaceChildren();
    const field = table[$("known-field").value];
    if (!field) return;
    field.answers.forEach((answer, index) => {
      const option = node("option", null, answer.label);
      option.value = String(index);
      values.append(option);
    });
  }

  function addKnown(event) {
    event.preventDefault();
    const field = table[$("known-field").value];
    if (!field) return;
    answer(field.field, field.answers[Number($("known-value").value)].value);
  }

  function labelOf(field, value) {
    const found = table[field] && table[field].answers.find((a) => a.value === value);
    return found ? found.label : String(value);
  }

  function renderKnown() {
    const list = $("known");
    list.replaceChildren();
    for (const [field, value] of Object.entries(known)) {
      const item = node("li");
      item.append(node("strong", null, table[field] ? table[field].name : field), node("span", null, labelOf(field, value)));
      const remove = node("button", "button link remove", "remove");
      remove.type = "button";
      remove.addEventListener("click", () => {
        delete known[field];
        fillKnownForm();
        refresh();
      });
      item.append(remove);
      list.append(item);
    }
  }

  function answer(field, value) {
    known[field] = value;
    fillKnownForm();
    refresh();
  }

  // ---------------------------------------------------------------- the next question

  async function refresh() {
    renderKnown();
    let reply;
    try {
      reply = await call(NEXT_URL, known);
    } catch (error) {
      failed(error);
      return;
    }
    message("");
    $("probability").textContent = percent(reply.probability);
    $("grade").textContent = `Grade ${reply.grade}`;
    const next = reply.questions.find((q) => !skipped.has(q.field));
    renderQuestion(next, reply.probability);
  }

  function comparison(field, value) {
    const entry = table[field] && table[field].answers.find((a) => a.value === value);
    if (!entry) return "";
    return `${percent(entry.share_best)} of best customers answer ${entry.label}, ${percent(entry.share_all)} of all leads`;
  }

  function renderQuestion(question, current) {
    show("question-panel", true);
    show("no-questions", !question);
    show("skip", Boolean(question));
    $("answers").replaceChildren();
    if (!question) {
      $("question").textContent = "";
      $("question-why").textContent = "";
      return;
    }
    $("question").textContent = question.question;
    $("question").dataset.field = question.field;
    $("question-why").textContent =
      `The answer moves the chance to convert by ${(question.value_of_asking * 100).toFixed(1)} points on average.`;
    for (const option of question.answers) {
      const button = node("button", "button answer");
      button.type = "button";
      button.dataset.value = JSON.stringify(option.value);
      const change = option.probability - current;
      const sign = change >= 0 ? "+" : "−";
      button.append(
        node("span", "answer-label", option.label),
        node(
          "span",
          "answer-effect",
          `${percent(option.probability)} (${sign}${Math.abs(change * 100).toFixed(1)} points), grade ${option.grade} · ` +
            `${percent(option.share)} of leads like this one`,
        ),
      );
      button.addEventListener("click", () => answer(question.field, option.value));
      $("answers").append(button, node("p", "comparison", comparison(question.field, option.value)));
    }
  }

  function skip() {
    const field = $("question").dataset.field;
    if (field) skipped.add(field);
    refresh();
  }

  function startOver() {
    for (const field of Object.keys(known)) delete known[field];
    skipped.clear();
    fillKnownForm();
    refresh();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key-input").value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORAGE, key);
      $("key-input").value = "";
      load();
    });
    $("forget-key").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORAGE);
      show("forget-key", false);
      askForKey("");
    });
    $("known-field").addEventListener("change", fillKnownValues);
    $("known-form").addEventListener("submit", addKnown);
    $("skip").addEventListener("click", skip);
    $("start-over").addEventListener("click", startOver);
    load();
  });
})();
