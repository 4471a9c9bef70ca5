// The spago server's page: question answering (the Go spaGO's BERT QA page) and named entities.
// Requests go to the endpoints next to this page; text is put in the page with textContent only.
"use strict";

const $ = (id) => document.getElementById(id);

async function post(endpoint, body) {
  const response = await fetch(new URL(endpoint, document.baseURI), {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// The text with the spans marked: spans = [{start, end, className, label?}], non-overlapping once sorted.
function render(container, text, spans) {
  container.replaceChildren();
  let at = 0;
  for (const span of [...spans].sort((a, b) => a.start - b.start)) {
    if (span.start < at) continue;
    container.append(document.createTextNode(text.slice(at, span.start)));
    const mark = document.createElement("mark");
    mark.className = span.className;
    mark.textContent = text.slice(span.start, span.end);
    if (span.label) {
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = span.label;
      mark.append(label);
      mark.dataset.label = span.label;
    }
    container.append(mark);
    at = span.end;
  }
  container.append(document.createTextNode(text.slice(at)));
}

async function answer() {
  const passage = $("passage").value, question = $("question").value;
  $("status").textContent = "";
  try {
    const data = await post("answer", {question, passage, options: {maxAnswers: 3, minConfidence: 0}});
    const best = data.answers.slice(0, 1).map((a) => ({start: a.start, end: a.end, className: "answer"}));
    render($("qa-passage"), passage, best);
    $("answers").replaceChildren(...data.answers.map((a) => {
      const item = document.createElement("li");
      item.textContent = a.text;
      const confidence = document.createElement("span");
      confidence.className = "confidence";
      confidence.textContent = `${(100 * a.confidence).toFixed(1)}%`;
      item.append(confidence);
      return item;
    }));
    $("status").textContent = data.answers.length ? "" : "no answer";
  } catch (error) {
    $("status").textContent = error.message;
  }
}

async function analyze() {
  const text = $("text").value;
  $("status").textContent = "";
  try {
    const data = await post("analyze", {text, options: {mergeEntities: true, filterNotEntities: true}});
    render($("entities"), text, data.tokens.map((t) => ({start: t.start, end: t.end, className: "entity",
                                                           label: t.label})));
  } catch (error) {
    $("status").textContent = error.message;
  }
}

async function start() {
  const health = await (await fetch(new URL("health", document.baseURI))).json();
  $("model").textContent = `${health.architecture} · ${health.model}`;
  $("qa").hidden = !health.endpoints.includes("/answer");
  $("ner").hidden = !health.endpoints.includes("/analyze");
  $("ask").addEventListener("click", answer);
  $("analyze").addEventListener("click", analyze);
  document.body.dataset.ready = "true";
}

start().catch((error) => { $("status").textContent = error.message; });
