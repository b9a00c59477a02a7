// Small DOM helpers: elements are built with text nodes only (nothing from the server is parsed as HTML).

/** h("p", {class: "x"}, "text", child...): an element with attributes and children. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(id, ...children) {
  const el = document.getElementById(id);
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export function show(id, visible) {
  document.getElementById(id).hidden = !visible;
}

const DAY = { day: "numeric", month: "long", year: "numeric" };

/** A unix time as a date a patient reads ("12 March 2027"). */
export function day(seconds) {
  return new Date(seconds * 1000).toLocaleDateString("en-GB", DAY);
}

/** A unix time with the time of day. */
export function when(seconds) {
  return new Date(seconds * 1000).toLocaleString("en-GB", { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** An account: the site's label if it has one, and the address (always shown in full). */
export function account(who) {
  return h(
    "span",
    { class: "account" },
    who.label ? h("strong", {}, who.label, " ") : null,
    h("code", { class: "address" }, who.address),
  );
}

/** Purposes in words with the HL7 code beside each: "Research (HRESCH)". */
export function purposes(list) {
  return list.map((p) => `${p.name} (${p.code})`).join(", ");
}

export function identifiedWords(identified) {
  return identified
    ? "identified: with your name and details"
    : "de-identified: your name and details removed";
}
